"""The models: the blog's seed CNN and the team's temporal conv net.

Both take MFCCs [batch, frames, coefficients] and start with a
Normalization layer holding the manifest's per-coefficient statistics, so a
saved or exported model normalises exactly as in training.
"""

from collections.abc import Callable
from collections.abc import Sequence

import keras
import numpy as np

from nsynth_contracts import manifest as manifest_lib


def normalization_layer(manifest: manifest_lib.Manifest) -> keras.layers.Layer:
  """Per-coefficient (last axis) standardisation by the training statistics."""
  norm = manifest.normalization
  if norm is None:
    raise ValueError('The manifest has no normalization statistics (it had '
                     'no training split); train on data with a train split.')
  std = np.maximum(np.asarray(norm.std), 1e-6)
  return keras.layers.Normalization(axis=-1, mean=np.asarray(norm.mean),
                                    variance=std**2, name='normalize_mfcc')


def seed_cnn(mfcc_shape: Sequence[int], num_classes: int,
             normalize: keras.layers.Layer) -> keras.Model:
  """The blog's network, layer for layer, after our normalisation layer."""
  frames, coefficients = mfcc_shape
  inputs = keras.Input(shape=(frames, coefficients), name='mfcc')
  x = normalize(inputs)
  x = keras.layers.Reshape((frames, coefficients, 1))(x)
  x = keras.layers.Conv2D(52, (2, 2), activation='relu')(x)
  x = keras.layers.Conv2D(64, (2, 2), activation='relu')(x)
  x = keras.layers.Conv2D(132, (2, 2), activation='relu')(x)
  x = keras.layers.MaxPooling2D((2, 2))(x)
  x = keras.layers.Dropout(0.25)(x)
  x = keras.layers.Flatten()(x)
  x = keras.layers.Dense(100, activation='relu')(x)
  x = keras.layers.Dropout(0.25)(x)
  x = keras.layers.Dense(64, activation='relu',
                         kernel_regularizer=keras.regularizers.l2(0.001))(x)
  x = keras.layers.Dropout(0.25)(x)
  outputs = keras.layers.Dense(num_classes, activation='softmax',
                               name='probabilities')(x)
  return keras.Model(inputs, outputs, name='seed_cnn')


def _residual_block(x, filters: int, dilation: int, name: str):
  shortcut = x
  x = keras.layers.Conv1D(filters, 3, padding='same', dilation_rate=dilation,
                          use_bias=False, name=f'{name}_conv1')(x)
  x = keras.layers.BatchNormalization(name=f'{name}_bn1')(x)
  x = keras.layers.Activation('relu')(x)
  x = keras.layers.Conv1D(filters, 3, padding='same', dilation_rate=dilation,
                          use_bias=False, name=f'{name}_conv2')(x)
  x = keras.layers.BatchNormalization(name=f'{name}_bn2')(x)
  if shortcut.shape[-1] != filters:
    shortcut = keras.layers.Conv1D(filters, 1, name=f'{name}_project')(shortcut)
  return keras.layers.Activation('relu')(x + shortcut)


def timbre_tcn(mfcc_shape: Sequence[int], num_classes: int,
               normalize: keras.layers.Layer) -> keras.Model:
  """The team's model: a small dilated temporal conv net over MFCC frames.

  Why this shape: an instrument's family shows in its spectral envelope
  (the MFCC coefficients, as channels) and in how it evolves (attack, sustain,
  release), so convolutions run along time only, with dilations 1-8 to see a
  whole attack. Pooling over time (mean and max) makes it indifferent to
  where in the clip things happen. Coefficient dropout and time masking during
  training push it to rely on no single coefficient or moment, which is what
  carries over to instruments it has never heard. ~100k parameters instead
  of 6.5M: it trains and serves far faster.
  """
  frames, coefficients = mfcc_shape
  inputs = keras.Input(shape=(frames, coefficients), name='mfcc')
  x = normalize(inputs)
  x = keras.layers.SpatialDropout1D(0.1, name='drop_frames')(
      keras.layers.Permute((2, 1))(x))        # drops whole frames
  x = keras.layers.Permute((2, 1))(x)
  x = keras.layers.Dropout(0.1, name='drop_coefficients')(x)
  x = keras.layers.Conv1D(64, 3, padding='same', name='stem')(x)
  for i, dilation in enumerate((1, 2, 4, 8)):
    x = _residual_block(x, 64, dilation, name=f'block{i}')
  x = keras.layers.Concatenate(name='pool')([
      keras.layers.GlobalAveragePooling1D()(x),
      keras.layers.GlobalMaxPooling1D()(x)])
  x = keras.layers.Dropout(0.3)(x)
  outputs = keras.layers.Dense(num_classes, activation='softmax',
                               name='probabilities')(x)
  return keras.Model(inputs, outputs, name='timbre_tcn')


MODELS: dict[str, Callable[..., keras.Model]] = {
    'seed_cnn': seed_cnn,
    'timbre_tcn': timbre_tcn,
}


def build(name: str, manifest: manifest_lib.Manifest) -> keras.Model:
  if name not in MODELS:
    raise ValueError(f'Unknown model {name!r}; choose one of {sorted(MODELS)}')
  return MODELS[name](manifest.mfcc_shape, manifest.vocabulary.num_classes,
                      normalization_layer(manifest))
