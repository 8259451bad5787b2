"""Models that hear with the pretrained embedding as well as the MFCCs.

The default recipe, `musicnn_ensemble`, averages eight members that learned
apart: today's MFCC ensemble (two timbre_tcn, two stats_mlp), two heads on
the embedding and the MFCC statistics together (`joint_mlp`), and two on the
embedding alone (`embedding_mlp`). Each member is selected at its own best
epoch (fit_callbacks.MemberSelection). Chosen on the leave-one-library-out
validation (BUILD_NOTES.md, "Pretrained representation"): 0.820 mean
validation accuracy against 0.801 for the MFCC ensemble alone.

The embedding's channels are standardised by the training split's statistics
(the manifest's), with the spread floored at EMBEDDING_STD_FLOOR: most of
musicnn's channels never fire on these notes, and dividing by their 1e-10
spread would make the heads fit float rounding noise (predictions would
change with the batch size or XLA).
"""

import keras
import numpy as np

from nsynth_contracts import manifest as manifest_lib
from trainer import layers
from trainer import models

# Spreads of embedding channels below this are treated as this (see above).
EMBEDDING_STD_FLOOR = 0.01


class ModelInputError(ValueError):
  """The data lacks what the model reads; the message says what to do."""


def embedding_normalization(manifest: manifest_lib.Manifest,
                            name: str) -> keras.layers.Layer:
  """Per-channel standardisation of the embedding by the training split's
  statistics, the spread floored at EMBEDDING_STD_FLOOR."""
  record = manifest.embedding
  if record is None:
    raise ModelInputError(
        'the data holds no embedding (written with nsynth-tfrecords '
        '--embedding=none); write it again with an embedding, or choose an '
        'MFCC model (--model=timbre_ensemble)')
  if record.normalization is None:
    raise ModelInputError('the manifest has no embedding statistics (its '
                          'data had no train split)')
  std = np.maximum(np.asarray(record.normalization.std), EMBEDDING_STD_FLOOR)
  return keras.layers.Normalization(
      axis=-1, mean=np.asarray(record.normalization.mean), variance=std**2,
      name=name)


def _head(x, num_classes: int, name: str):
  """Dropout, one regularised hidden layer, softmax: the heads' shape."""
  regularizer = keras.regularizers.l2(1e-3)
  x = keras.layers.Dropout(0.3, name=f'{name}_drop_in')(x)
  x = keras.layers.Dense(256, kernel_regularizer=regularizer,
                         name=f'{name}_dense')(x)
  x = keras.layers.BatchNormalization(name=f'{name}_bn')(x)
  x = keras.layers.Activation('relu')(x)
  x = keras.layers.Dropout(0.5, name=f'{name}_drop')(x)
  return keras.layers.Dense(num_classes, activation='softmax',
                            kernel_regularizer=regularizer,
                            name='probabilities')(x)


def embedding_mlp(manifest: manifest_lib.Manifest,
                  name: str = 'embedding_mlp') -> keras.Model:
  """A head on the embedding alone."""
  inputs = keras.Input((manifest.embedding_size,), name='embedding')
  x = embedding_normalization(manifest, 'normalize_embedding')(inputs)
  return keras.Model(inputs, _head(x, manifest.vocabulary.num_classes, name),
                     name=name)


def joint_mlp(manifest: manifest_lib.Manifest,
              name: str = 'joint_mlp') -> keras.Model:
  """A head on the embedding and the MFCC statistics (stats_mlp's: each
  coefficient's and its delta's mean, std, max, min and frame-to-frame std)
  side by side."""
  embedding = keras.Input((manifest.embedding_size,), name='embedding')
  mfcc = keras.Input(manifest.mfcc_shape, name='mfcc')
  heard = embedding_normalization(manifest, 'normalize_embedding')(embedding)
  x = models.normalization_layer(manifest)(mfcc)
  x = layers.AppendDeltas(name='deltas')(x)
  x = layers.SummaryStatistics(name='statistics')(x)
  x = keras.layers.BatchNormalization(name='standardize_statistics')(x)
  x = keras.layers.Concatenate(name='together')([heard, x])
  return keras.Model({'embedding': embedding, 'mfcc': mfcc},
                     _head(x, manifest.vocabulary.num_classes, name),
                     name=name)


def musicnn_ensemble(manifest: manifest_lib.Manifest) -> keras.Model:
  """The default recipe: the MFCC ensemble's four members, two joint heads
  and two embedding heads, probabilities averaged over all eight."""
  mfcc_members = models.timbre_ensemble(
      manifest.mfcc_shape, manifest.vocabulary.num_classes,
      models.normalization_layer(manifest)).members
  members = [*mfcc_members,
             joint_mlp(manifest, 'joint_a'), joint_mlp(manifest, 'joint_b'),
             embedding_mlp(manifest, 'embed_a'),
             embedding_mlp(manifest, 'embed_b')]
  model = layers.AveragedEnsemble(members, name='musicnn_ensemble')
  model.build({'mfcc': (None, *manifest.mfcc_shape),
               'embedding': (None, manifest.embedding_size)})
  return model
