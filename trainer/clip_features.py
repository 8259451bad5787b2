"""What a model reads, computed from raw clips: the one path from audio to
a model's inputs outside the Beam job.

The Beam job wrote each record's MFCCs (nsynth_contracts.features) and, when
asked, its embedding (nsynth_contracts.embedding); a model reads one or both
(trainer.layers.input_names). `ClipFeatures` computes exactly those from
16 kHz clips with the same contract functions, in core TensorFlow ops, for
the phrase report and for the serving signatures, which carry the frozen
embedding network inside the SavedModel.
"""

import keras
import tensorflow as tf

from nsynth_contracts import embedding
from nsynth_contracts import feature_params
from nsynth_contracts import features
from nsynth_contracts import manifest as manifest_lib
from nsynth_contracts import musicnn_weights
from nsynth_contracts import schema
from trainer import layers


class EmbeddingWeightsError(ValueError):
  """The embedding's weights here are not the ones the data was made with;
  the message says which."""


def embedding_network(manifest: manifest_lib.Manifest) -> keras.Model:
  """The frozen network of the manifest's embedding, built from the
  installed weights, which must be the ones the Beam job used.

  Raises:
    musicnn_weights.MusicnnWeightsError: the weights are not installed.
    EmbeddingWeightsError: they differ from the data's (by SHA-256).
  """
  record = manifest.embedding
  weights = musicnn_weights.read_weights(record.params.model_name)
  digest = musicnn_weights.weights_sha256(weights)
  if digest != record.weights_sha256:
    raise EmbeddingWeightsError(
        f'the installed {record.params.model_name} weights (SHA-256 '
        f'{digest[:12]}...) are not the ones the data was written with '
        f'({record.weights_sha256[:12]}...): install the same musicnn wheel')
  return embedding.build_embedding_model(weights, record.params)


class ClipFeatures:
  """Raw clips float32 [B, clip_samples] -> a model's inputs."""

  def __init__(self, params: feature_params.FeatureParams,
               names: tuple[str, ...] = (schema.MFCC,),
               network: keras.Model | None = None):
    """Args: params: the MFCCs' parameters (the data's or the export's);
    names: the features the model reads; network: the embedding network
    when they include the embedding (embedding_network)."""
    if schema.EMBEDDING in names and network is None:
      raise ValueError('the model reads the embedding: give its network')
    self.names = names
    self.network = network
    self._params = params

  @classmethod
  def for_model(cls, model: keras.Model,
                manifest: manifest_lib.Manifest) -> 'ClipFeatures':
    """What `model`, trained on `manifest`'s data, reads.

    Raises:
      musicnn_weights.MusicnnWeightsError, EmbeddingWeightsError: see
        embedding_network.
    """
    names = layers.input_names(model)
    return cls(manifest.feature_params, names, embedding_network(manifest)
               if schema.EMBEDDING in names else None)

  def __call__(self, clips: tf.Tensor):
    """The tensor of the one feature the model reads, or a dict of them."""
    computed = {}
    if schema.MFCC in self.names:
      computed[schema.MFCC] = features.waveform_to_mfcc(clips, self._params)
    if schema.EMBEDDING in self.names:
      computed[schema.EMBEDDING] = self.network(clips, training=False)
    if len(self.names) == 1:
      return computed[self.names[0]]
    return computed
