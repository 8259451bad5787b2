"""What a model reads, computed from raw clips: the one path from audio to
a model's inputs outside the Beam job.

The Beam job wrote each record's MFCCs (nsynth_contracts.features) and the
pretrained representations it was asked for (nsynth_contracts.representation),
each under its key; a model reads some of them, by those names.
`ClipFeatures` computes exactly the ones named from 16 kHz clips with the
same contract functions, in core TensorFlow ops, for the trainer's phrase
report and for the serving signatures, which carry the frozen networks
inside the SavedModel.
"""

import keras
import tensorflow as tf

from nsynth_contracts import feature_params
from nsynth_contracts import features
from nsynth_contracts import manifest as manifest_lib
from nsynth_contracts import representation
from nsynth_contracts import schema


class RepresentationWeightsError(ValueError):
  """The weights here cannot compute a representation the data holds, or are
  not the ones it was computed with; the message says which, in one line."""


def representation_network(record: manifest_lib.RepresentationRecord,
                           precision: str = 'float32') -> keras.Model:
  """The frozen network of one of the manifest's representations, built from
  the installed weights, which must be the ones the Beam job used, to
  compute in `precision` (a resolved nsynth_contracts.precision choice).

  Raises:
    RepresentationWeightsError: the weights are missing, damaged, or differ
      from the data's (by SHA-256).
  """
  heard = record.representation
  try:
    loaded, network = representation.WithWeights.read_with_network(heard)
  except representation.RepresentationError as e:
    raise RepresentationWeightsError(str(e)) from None
  if loaded.weights_sha256 != record.weights_sha256:
    raise RepresentationWeightsError(
        f'the installed {heard.describe()} weights (SHA-256 '
        f'{loaded.weights_sha256[:12]}...) are not the ones the data was '
        f'written with ({record.weights_sha256[:12]}...): install the same '
        f'weights')
  if precision != 'float32':
    return heard.build_model(loaded.weights, precision)
  return network


class ClipFeatures:
  """Raw clips float32 [B, clip_samples] -> a model's inputs."""

  def __init__(self, params: feature_params.FeatureParams,
               names: tuple[str, ...] = (schema.MFCC,),
               networks: dict[str, keras.Model] | None = None):
    """Args: params: the MFCCs' parameters (the data's or the export's);
    names: the features the model reads; networks: {representation key:
    its network} for each representation among them
    (representation_network)."""
    networks = dict(networks or {})
    missing = [n for n in names if n != schema.MFCC and n not in networks]
    if missing:
      raise ValueError(f'the model reads {missing[0]}: give its network')
    self.names = names
    self.networks = networks
    self._params = params

  @classmethod
  def for_inputs(cls, names: tuple[str, ...],
                 manifest: manifest_lib.Manifest,
                 precision: str = 'float32') -> 'ClipFeatures':
    """The features `names` (a model's inputs, in order) of a model trained
    on `manifest`'s data, its networks computing in `precision` (a resolved
    nsynth_contracts.precision choice).

    Raises:
      RepresentationWeightsError: see representation_network; or a name is
        a representation the data does not hold.
    """
    missing = [name for name in names if name != schema.MFCC and
               name not in manifest.representation_sizes]
    if missing:
      held = sorted(manifest.representation_sizes) or 'no representation'
      raise RepresentationWeightsError(
          f'the model reads {missing[0]}, which the data does not hold (it '
          f'holds {held}): evaluate or export it with the data it was '
          f'trained on')
    return cls(manifest.feature_params, names, {
        name: representation_network(manifest.representation(name), precision)
        for name in names if name != schema.MFCC})

  def __call__(self, clips: tf.Tensor):
    """The tensor of the one feature the model reads, or a dict of them."""
    computed = {}
    for name in self.names:
      if name == schema.MFCC:
        computed[name] = features.waveform_to_mfcc(clips, self._params)
      else:
        computed[name] = self.networks[name](clips, training=False)
    if len(self.names) == 1:
      return computed[self.names[0]]
    return computed
