"""musicnn's network: waveform in, pooled musicnn representation out.

musicnn (Pons & Serra 2019) rebuilt as Keras 3 layers from the structure of
its models.py, with the weights its wheel ships (musicnn_weights). The model
`build_embedding_model` returns is the one function from a 16 kHz waveform
to the embedding, for the Beam job and the serving export alike. Inference
only: batch normalisation uses its moving statistics, there is no dropout,
and the model is frozen, so `training=True` from a head on top changes
nothing.

Only core TensorFlow ops run (TF Serving's standard binary has no
tensorflow-io kernels): the input is librosa.feature.melspectrogram (n_fft
512, hop 256, 96 bands) through features.mel_power_spectrogram, rounded to
float16 as musicnn stores it, then log10(10000 x + 1).

    weights = musicnn_weights.read_weights(params.model_name)
    model = musicnn_network.build_embedding_model(weights, params)
    vectors = model(waveforms)          # [batch, params.size]
"""

from collections.abc import Sequence
from typing import Protocol

import keras
import numpy as np
import tensorflow as tf

from nsynth_common import dataclass_json
from nsynth_contracts import feature_params
from nsynth_contracts import musicnn_layers
from nsynth_contracts import musicnn_weights
from nsynth_contracts.musicnn_architecture import CLIP_LAYER_WIDTHS
from nsynth_contracts.musicnn_architecture import FRAME_LAYER_WIDTHS
from nsynth_contracts.musicnn_architecture import NUM_MEL_BANDS


class EmbeddingParams(Protocol):
  """What the network needs of its parameters: the fields of
  nsynth_contracts.musicnn_representation.MusicnnRepresentation it reads."""
  model_name: str
  layer: str
  time_statistics: tuple[str, ...]
  log_gain: float

  @property
  def spectrogram_params(self) -> feature_params.FeatureParams: ...

  @property
  def num_mel_bands(self) -> int: ...


def log_mel(waveforms: tf.Tensor, params: EmbeddingParams) -> tf.Tensor:
  """musicnn's input: its log-compressed librosa mel spectrogram.

  Args:
    waveforms: float32 [batch, samples] in [-1, 1] at the spectrogram's
      rate, any length: padded or trimmed to its clip.
    params: embedding parameters.

  Returns:
    float32 [batch, num_frames, num_mel_bands]; [batch, 251, 96] for 4 s.
  """
  return musicnn_layers.log_mel(waveforms, params.spectrogram_params,
                                params.log_gain)


def _norm(name):
  return keras.layers.BatchNormalization(
      epsilon=musicnn_layers.BATCH_NORM_EPSILON, name=name)


def _frontend(spectrogram, num_mel_bands, arithmetic):
  """[B, T, M] log-mel -> [B, T, 561]: musicnn's timbral + temporal maps,
  the timbral convolutions (nearly all the network's multiply-adds) in
  `arithmetic`.

  The temporal ones stay float32: each sums up to 128 frames of one band,
  whose level is large against its variation, and bfloat16's 8 bits lost
  enough of the variation to change 1.7% of the demo's test answers (the
  timbral ones alone changed none); nor were they faster in bfloat16 once
  that level was taken out and added back (BUILD_NOTES.md, "Hear faster").
  """
  x = keras.layers.Reshape((-1, num_mel_bands, 1), name='bands')(spectrogram)
  x = _norm('input_norm')(x)
  # Timbral: 7 frames by 40% / 70% of the bands, zero-padded in time only.
  padded = keras.layers.ZeroPadding2D(((3, 3), (0, 0)), name='pad_time')(x)
  timbral = [musicnn_layers.FrequencyMaxConv(
      204, (7, bands), 'valid', arithmetic, name=f'timbral_7x{bands}')(padded)
             for bands in (int(0.4 * num_mel_bands),
                           int(0.7 * num_mel_bands))]
  # Temporal: one band by 128, 64, 32 frames, 'same' in time.
  temporal = [musicnn_layers.FrequencyMaxConv(
      51, (frames, 1), 'same', name=f'temporal_{frames}')(x)
              for frames in (128, 64, 32)]
  return (keras.layers.Concatenate(name='timbral')(timbral),
          keras.layers.Concatenate(name='temporal')(temporal))


def _midend(frontend):
  """Three 7-frame convolutions over every map, the last two residual."""
  cnn1 = _norm('cnn1_norm')(keras.layers.Conv1D(
      64, 7, padding='same', activation='relu', name='cnn1_conv')(frontend))
  outputs = [cnn1]
  for name in ('cnn2', 'cnn3'):
    maps = _norm(f'{name}_norm')(keras.layers.Conv1D(
        64, 7, padding='same', activation='relu',
        name=f'{name}_conv')(outputs[-1]))
    outputs.append(keras.layers.Add(name=name)([maps, outputs[-1]]))
  return outputs


def _backend(midend, width):
  """[B, T, 753] -> penultimate [B, 200] and tag probabilities [B, 50]."""
  pools = [keras.layers.Reshape((width, 1))(keras.layers.GlobalMaxPooling1D()(
      midend)), keras.layers.Reshape((width, 1))(
          keras.layers.GlobalAveragePooling1D()(midend))]
  # musicnn flattens [753, 2] maps: max and mean alternate, 1,506 values.
  x = keras.layers.Flatten()(keras.layers.Concatenate()(pools))
  x = _norm('pool_norm')(x)
  x = keras.layers.Dense(200, activation='relu', name='penultimate_dense')(x)
  penultimate = _norm('penultimate_norm')(x)
  tags = keras.layers.Dense(CLIP_LAYER_WIDTHS['taggram'], activation='sigmoid',
                            name='tags_dense')(penultimate)
  return penultimate, tags


def build_network(weights: dict[str, np.ndarray],
                  num_mel_bands: int = NUM_MEL_BANDS,
                  layers: Sequence[str] | None = None,
                  arithmetic: str = 'float32') -> keras.Model:
  """musicnn from its log-mel input to the layers we expose.

  Args:
    weights: musicnn_weights.read_weights(model_name).
    num_mel_bands: 96, as musicnn was trained.
    layers: the outputs wanted (None: all); only what they need is run.
    arithmetic: what the timbral convolutions multiply in, float32 or
      bfloat16 (the rest is float32 either way; see _frontend).

  Returns:
    A frozen model: float32 [batch, frames, bands], any number of frames ->
    {layer: [batch, frames, width]} for FRAME_LAYER_WIDTHS and
    {layer: [batch, width]} for CLIP_LAYER_WIDTHS.
  """
  spectrogram = keras.Input((None, num_mel_bands), name='log_mel')
  timbral, temporal = _frontend(spectrogram, num_mel_bands, arithmetic)
  frontend = keras.layers.Concatenate(name='frontend')([timbral, temporal])
  cnn1, cnn2, cnn3 = _midend(frontend)
  midend = keras.layers.Concatenate(name='midend')(
      [frontend, cnn1, cnn2, cnn3])
  penultimate, taggram = _backend(midend, FRAME_LAYER_WIDTHS['midend'])
  outputs = {'timbral': timbral, 'temporal': temporal, 'cnn1': cnn1,
             'cnn2': cnn2, 'cnn3': cnn3, 'midend': midend,
             'penultimate': penultimate, 'taggram': taggram}
  network = keras.Model(spectrogram, outputs, name='musicnn')
  _load_weights(network, weights)
  if layers is not None:
    # A functional model runs only the layers its outputs depend on: the
    # temporal maps alone skip the timbral convolutions, most of the work.
    network = keras.Model(spectrogram, {k: outputs[k] for k in layers},
                          name='musicnn')
  network.trainable = False
  return network


def _load_weights(network: keras.Model, weights: dict[str, np.ndarray]):
  for layer_name, names in musicnn_weights.CHECKPOINT_NAMES.items():
    layer = network.get_layer(layer_name)
    values = []
    for key, variable in zip(names, layer.weights):
      if key not in weights:
        raise musicnn_weights.MusicnnWeightsError(
            f'the musicnn weights have no {key}')
      value = np.asarray(weights[key], np.float32)
      # musicnn's 'mid-end' kernels span every map as a 2-D kernel with one
      # input channel: the same numbers as our 1-D kernels.
      if value.size != int(np.prod(variable.shape)):
        raise musicnn_weights.MusicnnWeightsError(
            f'the musicnn weight {key} has shape {value.shape}, '
            f'not {tuple(variable.shape)}')
      values.append(value.reshape(variable.shape))
    layer.set_weights(values)


def _pool(tensor, layer: str, params: EmbeddingParams, name: str):
  """Frame layers: params.time_statistics over time; clip layers as they
  are."""
  if layer not in FRAME_LAYER_WIDTHS:
    return tensor
  return musicnn_layers.TimeStatistics(params.time_statistics,
                                       name=name)(tensor)


def build_embedding_model(weights: dict[str, np.ndarray],
                          params: EmbeddingParams,
                          arithmetic: str = 'float32') -> keras.Model:
  """The embedding contract: waveforms -> params.layer, pooled.

  Args:
    weights: musicnn_weights.read_weights(params.model_name).
    params: embedding parameters.
    arithmetic: float32, or bfloat16 for the timbral convolutions (see
      build_network).

  Returns:
    A frozen model: float32 [batch, samples] 16 kHz waveforms in [-1, 1], any
    length (padded or trimmed to one clip) -> float32 [batch,
    params.size]: for frame layers, params.time_statistics of each
    channel over time, concatenated in that order (3,012 values for
    'midend' with the default four); the layer itself for clip layers.
  """
  return _waveform_model(weights, params, (params.layer,), arithmetic)


def build_all_layers_model(weights: dict[str, np.ndarray],
                           params: EmbeddingParams) -> keras.Model:
  """Every candidate layer at once, pooled as build_embedding_model pools
  it: {layer: [batch, that layer's representation size]}. For
  choosing the layer; params.layer is ignored."""
  return _waveform_model(weights, params,
                         (*FRAME_LAYER_WIDTHS, *CLIP_LAYER_WIDTHS))


def _waveform_model(weights, params, layers,
                    arithmetic: str = 'float32') -> keras.Model:
  waveforms = keras.Input((None,), name='audio')
  spectrogram = musicnn_layers.MusicnnLogMel(
      dataclass_json.to_json(params.spectrogram_params), params.log_gain,
      name='log_mel')(waveforms)
  network = build_network(weights, params.num_mel_bands, layers, arithmetic)
  maps = network(spectrogram)
  outputs = {layer: _pool(maps[layer], layer, params, f'{layer}_embedding')
             for layer in layers}
  if len(layers) == 1:
    outputs = outputs[layers[0]]
  model = keras.Model(waveforms, outputs, name=f'{params.model_name}_embedding'
                      + ('' if arithmetic == 'float32' else f'_{arithmetic}'))
  model.trainable = False
  return model
