"""The Keras layers and the ensemble model our models are made of.

Registered with Keras under the package 'nsynth', so a saved model loads
wherever this module is imported (trainer.models.load imports it).
"""

from collections.abc import Sequence

import keras
from keras import ops

_PACKAGE = 'nsynth'


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SpecAugment(keras.layers.Layer):
  """SpecAugment's masking, in training only: blanks random frames and
  coefficients.

  Placed after the normalisation, where zero is the training mean, so a
  masked stretch looks like 'nothing unusual here'. Park et al. 2019 (without
  time warping). Over three seeds it lifted accuracy on unheard libraries by
  0.014 and on the validation split by 0.03 (BUILD_NOTES.md, "Unheard
  instruments").
  """

  def __init__(self, time_masks: int = 2, max_time_width: int = 15,
               coefficient_masks: int = 2, max_coefficient_width: int = 3,
               seed: int | None = None, **kwargs):
    super().__init__(**kwargs)
    self.time_masks = time_masks
    self.max_time_width = max_time_width
    self.coefficient_masks = coefficient_masks
    self.max_coefficient_width = max_coefficient_width
    self.seed = seed
    self.seed_generator = keras.random.SeedGenerator(seed)

  def _keep(self, batch, length: int, masks: int, max_width: int):
    """float [batch, length]: 0 inside any of `masks` random bands."""
    positions = ops.arange(length)[None, :]
    keep = ops.ones((batch, length))
    for _ in range(masks):
      width = keras.random.randint((batch, 1), 0, max_width + 1,
                                   seed=self.seed_generator)
      start = keras.random.randint((batch, 1), 0, length,
                                   seed=self.seed_generator)
      inside = ops.logical_and(positions >= start, positions < start + width)
      keep = keep * (1.0 - ops.cast(inside, keep.dtype))
    return keep

  def call(self, inputs, training=None):
    if not training:
      return inputs
    batch = ops.shape(inputs)[0]
    frames, coefficients = inputs.shape[1], inputs.shape[2]
    x = inputs * self._keep(batch, frames, self.time_masks,
                            self.max_time_width)[:, :, None]
    return x * self._keep(batch, coefficients, self.coefficient_masks,
                          self.max_coefficient_width)[:, None, :]

  def get_config(self):
    return {**super().get_config(), 'time_masks': self.time_masks,
            'max_time_width': self.max_time_width,
            'coefficient_masks': self.coefficient_masks,
            'max_coefficient_width': self.max_coefficient_width,
            'seed': self.seed}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class AppendDeltas(keras.layers.Layer):
  """[batch, frames, c] -> [batch, frames, 2c]: the frames and their deltas.

  The regression delta over +-2 frames with the edge frames repeated, as
  librosa.feature.delta(width=5, mode='nearest') and HTK define it.
  """

  def call(self, inputs):
    padded = ops.concatenate(
        [inputs[:, :1], inputs[:, :1], inputs, inputs[:, -1:],
         inputs[:, -1:]], axis=1)
    frames = inputs.shape[1]

    def shifted(offset):
      return padded[:, 2 + offset:2 + offset + frames]

    deltas = (shifted(1) - shifted(-1)
              + 2.0 * (shifted(2) - shifted(-2))) / 10.0
    return ops.concatenate([inputs, deltas], axis=-1)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SummaryStatistics(keras.layers.Layer):
  """[batch, frames, c] -> [batch, 5c]: per channel over time the mean, std,
  max, min and the std of the frame-to-frame difference (how much it moves).
  """

  def call(self, inputs):
    return ops.concatenate([
        ops.mean(inputs, axis=1), ops.std(inputs, axis=1),
        ops.max(inputs, axis=1), ops.min(inputs, axis=1),
        ops.std(inputs[:, 1:] - inputs[:, :-1], axis=1)], axis=-1)


def input_names(model: keras.Model) -> tuple[str, ...]:
  """The features a model reads ('mfcc', representation keys), in input
  order; an ensemble reads what its members read."""
  if isinstance(model, AveragedEnsemble):
    return tuple(dict.fromkeys(name for member in model.members
                               for name in input_names(member)))
  return tuple(tensor.name.split(':')[0] for tensor in model.inputs)


def member_inputs(model: keras.Model, features):
  """What `model` is called with: from a dict of features, the one tensor
  it reads, or the dict of the ones it reads (a tensor passes as it is)."""
  if not isinstance(features, dict):
    return features
  names = input_names(model)
  if len(names) == 1:
    return features[names[0]]
  return {name: features[name] for name in names}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class AveragedEnsemble(keras.Model):
  """Averages its members' probabilities; each member learns on its own.

  The loss is the mean of each member's own loss against the labels, not the
  loss of the average: members trained apart disagree in useful ways, and the
  average of members that disagree is what generalises (BUILD_NOTES.md,
  "Unheard instruments"). With Adam this trains each member exactly as if
  alone, in one fit, one checkpoint and one SavedModel.
  """

  def __init__(self, members: Sequence[keras.Model], **kwargs):
    super().__init__(**kwargs)
    if len(members) < 2:
      raise ValueError('An ensemble needs at least two members.')
    self.members = list(members)
    # Keras calls compute_loss right after call, in the same step: the
    # members' outputs of that call are kept for it here.
    self._member_outputs = None

  def call(self, inputs, training=None):
    outputs = [member(member_inputs(member, inputs), training=training)
               for member in self.members]
    self._member_outputs = outputs
    return ops.mean(ops.stack(outputs, axis=0), axis=0)

  def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None,
                   training=True):
    outputs, self._member_outputs = self._member_outputs, None
    if outputs is None or y is None:
      return super().compute_loss(x, y, y_pred, sample_weight, training)
    member_losses = [
        super(AveragedEnsemble, self).compute_loss(
            x, y, output, sample_weight, training) for output in outputs]
    return ops.mean(ops.stack(member_losses))

  def get_config(self):
    return {'name': self.name, 'members': [
        keras.saving.serialize_keras_object(m) for m in self.members]}

  @classmethod
  def from_config(cls, config, custom_objects=None):
    members = [keras.saving.deserialize_keras_object(
        m, custom_objects=custom_objects) for m in config.pop('members')]
    return cls(members, **config)
