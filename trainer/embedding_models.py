"""Models that hear with the pretrained representations the records hold.

The default, `embedding_linear`, is multinomial logistic regression on every
representation of the data (nsynth_contracts.representation), standardised:
a head that cannot learn much about the few sample libraries we train on
beyond what the pretrained network already hears. Measured on notes of two
realistic sample libraries we never use, such linear probes on the default
representation transferred best of everything tried, and MFCC statistics worst;
more capacity did not transfer better on our leave-recordings-out yardstick
(BUILD_NOTES.md, "Choosing by what transfers"). `embedding_mlp` is the same
inputs through one regularised hidden layer.

Each representation is standardised by the training split's statistics (the
manifest's), with the spread floored at its kind's `std_floor`: channels
that never fire on these notes have spreads near 1e-10, and dividing by them
would make a head fit float rounding noise (predictions would change with
the batch size or XLA).
"""

import keras
import numpy as np

from nsynth_contracts import manifest as manifest_lib

# The linear head's L2 penalty as scikit-learn's LogisticRegression states
# it: C * (sum of the examples' losses) + |W|^2 / 2. C = 0.01 is the probe
# that measured transfer (BUILD_NOTES.md); scaled by the training records,
# so that the penalty means the same on the demo and on all of NSynth.
INVERSE_REGULARIZATION_C = 0.01


class ModelInputError(ValueError):
  """The data lacks what the model reads; the message says what to do."""


def _representations(manifest: manifest_lib.Manifest
                     ) -> tuple[manifest_lib.RepresentationRecord, ...]:
  if not manifest.representations:
    raise ModelInputError(
        'the data holds no pretrained representation (written with '
        'nsynth-tfrecords --embedding=none); write it again with one, or '
        'choose an MFCC model (--model=timbre_ensemble)')
  for record in manifest.representations:
    if record.normalization is None:
      raise ModelInputError(f'the manifest has no statistics of {record.key} '
                            f'(its data had no train split)')
  return manifest.representations


def _standardize(record: manifest_lib.RepresentationRecord
                 ) -> keras.layers.Layer:
  """Per-channel standardisation by the training split's statistics, the
  spread floored where the representation's kind says."""
  std = np.maximum(np.asarray(record.normalization.std),
                   record.representation.std_floor)
  return keras.layers.Normalization(
      axis=-1, mean=np.asarray(record.normalization.mean), variance=std**2,
      name=f'normalize_{record.key}')


def _standardized_inputs(manifest: manifest_lib.Manifest):
  """({key: Input}, every representation standardised and concatenated)."""
  inputs, standardized = {}, []
  for record in _representations(manifest):
    inputs[record.key] = keras.Input((record.size,), name=record.key)
    standardized.append(_standardize(record)(inputs[record.key]))
  x = (standardized[0] if len(standardized) == 1 else
       keras.layers.Concatenate(name='representations')(standardized))
  return inputs, x


def _model(inputs: dict, outputs, name: str) -> keras.Model:
  # One input is passed as a tensor, several as a dict by key.
  return keras.Model(next(iter(inputs.values())) if len(inputs) == 1
                     else inputs, outputs, name=name)


def training_examples(manifest: manifest_lib.Manifest) -> int:
  """Records of the split the statistics (and the model) are trained on."""
  split = manifest.representations[0].normalization.split
  return max(manifest.splits[split].num_examples, 1)


def embedding_linear(manifest: manifest_lib.Manifest,
                     name: str = 'embedding_linear') -> keras.Model:
  """Multinomial logistic regression on the standardised representations,
  with scikit-learn's L2 penalty at C = INVERSE_REGULARIZATION_C."""
  inputs, x = _standardized_inputs(manifest)
  # Keras adds the penalty to the mean loss of a batch: C * n * mean + |W|^2
  # / 2 is proportional to mean + |W|^2 / (2 C n).
  penalty = 1.0 / (2.0 * INVERSE_REGULARIZATION_C *
                   training_examples(manifest))
  outputs = keras.layers.Dense(
      manifest.vocabulary.num_classes, activation='softmax',
      kernel_regularizer=keras.regularizers.l2(penalty),
      name='probabilities')(x)
  return _model(inputs, outputs, name)


def embedding_mlp(manifest: manifest_lib.Manifest,
                  name: str = 'embedding_mlp') -> keras.Model:
  """Dropout, one regularised hidden layer of 256, softmax."""
  inputs, x = _standardized_inputs(manifest)
  regularizer = keras.regularizers.l2(1e-3)
  x = keras.layers.Dropout(0.3, name='drop_in')(x)
  x = keras.layers.Dense(256, kernel_regularizer=regularizer,
                         name='hidden')(x)
  x = keras.layers.BatchNormalization(name='hidden_bn')(x)
  x = keras.layers.Activation('relu')(x)
  x = keras.layers.Dropout(0.5, name='drop')(x)
  outputs = keras.layers.Dense(manifest.vocabulary.num_classes,
                               activation='softmax',
                               kernel_regularizer=regularizer,
                               name='probabilities')(x)
  return _model(inputs, outputs, name)
