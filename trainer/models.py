"""The MFCC models: the seed recipe's CNN, the team's temporal conv net, a
statistics MLP, and an ensemble of the last two. (The default model reads
a pretrained representation instead: trainer.embedding_models.)

Each takes MFCCs [batch, frames, coefficients] and starts with a
Normalization layer holding the manifest's per-coefficient statistics, so a
saved or exported model normalises exactly as in training. Load saved ones
with `load`, which knows our layers; `non_finite_weight` says whether one
holds NaN or Inf (training checks as it goes, the export before it serves).
"""

from collections.abc import Callable
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from nsynth_contracts import manifest as manifest_lib
from trainer import layers


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
  """The seed recipe's network, layer for layer, after our normalisation
  layer: the small Keras CNN on 20 librosa MFCCs of the blog post this
  project started from."""
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
               normalize: keras.layers.Layer,
               name: str = 'timbre_tcn') -> keras.Model:
  """The team's model: a small dilated temporal conv net over MFCC frames.

  Why this shape: an instrument's family shows in its spectral envelope
  (the MFCC coefficients, as channels) and in how it evolves (attack, sustain,
  release), so convolutions run along time only, with dilations 1-8 to see a
  whole attack. Pooling over time (mean and max) makes it indifferent to
  where in the clip things happen. SpecAugment's masks, frame and
  coefficient dropout during training push it to rely on no single
  coefficient or moment, which is what carries over to instruments it has
  never heard. ~105k parameters on 20 MFCCs, ~125k on 128, instead of the
  seed CNN's 6.5M (50M on 128): it trains and serves far faster.
  """
  frames, coefficients = mfcc_shape
  inputs = keras.Input(shape=(frames, coefficients), name='mfcc')
  x = normalize(inputs)
  # Coefficient masks as wide as 15% of the coefficients (3 of 20, as tuned
  # on 20; 19 of 128), so that they hide a comparable share of the envelope.
  x = layers.SpecAugment(
      max_coefficient_width=max(1, round(0.15 * coefficients)),
      name='mask')(x)
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
  return keras.Model(inputs, outputs, name=name)


def stats_mlp(mfcc_shape: Sequence[int], num_classes: int,
              normalize: keras.layers.Layer,
              name: str = 'stats_mlp') -> keras.Model:
  """An MLP on each coefficient's (and its delta's) statistics over time.

  Why: it sees the note only as a whole (its envelope's level, spread,
  extremes and movement), not the order of frames, so it errs differently
  from timbre_tcn; alone it is about as good, averaged with it better
  (BUILD_NOTES.md, "Unheard instruments"). The statistics' scales differ
  widely, hence the batch normalisation first.
  """
  frames, coefficients = mfcc_shape
  inputs = keras.Input(shape=(frames, coefficients), name='mfcc')
  x = normalize(inputs)
  x = layers.AppendDeltas(name='deltas')(x)
  x = layers.SummaryStatistics(name='statistics')(x)
  x = keras.layers.BatchNormalization(name='standardize_statistics')(x)
  x = keras.layers.Dropout(0.1)(x)
  for i in range(2):
    x = keras.layers.Dense(256, name=f'dense{i}')(x)
    x = keras.layers.BatchNormalization(name=f'dense{i}_bn')(x)
    x = keras.layers.Activation('relu')(x)
    x = keras.layers.Dropout(0.5)(x)
  outputs = keras.layers.Dense(num_classes, activation='softmax',
                               name='probabilities')(x)
  return keras.Model(inputs, outputs, name=name)


def timbre_ensemble(mfcc_shape: Sequence[int], num_classes: int,
                    normalize: keras.layers.Layer) -> keras.Model:
  """Two timbre_tcn and two stats_mlp, probabilities averaged (the MFCC
  models' best; the default before the pretrained representation).

  Why: on libraries never heard, averaging members that learned apart was
  the largest gain we measured after the features, and an MLP trains in about
  half a TCN's time (BUILD_NOTES.md, "Unheard instruments").
  """
  def fresh_normalize():
    return keras.layers.Normalization.from_config(normalize.get_config())

  members = [
      timbre_tcn(mfcc_shape, num_classes, fresh_normalize(), name='tcn_a'),
      timbre_tcn(mfcc_shape, num_classes, fresh_normalize(), name='tcn_b'),
      stats_mlp(mfcc_shape, num_classes, fresh_normalize(), name='mlp_a'),
      stats_mlp(mfcc_shape, num_classes, fresh_normalize(), name='mlp_b'),
  ]
  model = layers.AveragedEnsemble(members, name='timbre_ensemble')
  model.build((None, *mfcc_shape))
  return model


def load(path: str) -> keras.Model:
  """A model saved by the trainer (.keras), with our layers known."""
  return keras.models.load_model(path)


def finiteness_check(model: keras.Model) -> Callable[[], bool]:
  """A function saying whether every weight of `model` is finite: one
  compiled call reading the weights where they live, cheap enough for
  every batch (the weights are captured once, not passed each time)."""
  values = [weight.value for weight in model.weights]
  compiled = tf.function(lambda: tf.reduce_all(
      [tf.reduce_all(tf.math.is_finite(v)) for v in values]))
  return lambda: bool(compiled())


def non_finite_weight(model: keras.Model,
                      all_finite: Callable[[], bool] | None = None
                      ) -> str | None:
  """The path of the first weight holding NaN or Inf, or None."""
  if (all_finite or finiteness_check(model))():
    return None
  for weight in model.weights:
    if not tf.reduce_all(tf.math.is_finite(weight.value)):
      return weight.path
  return None
