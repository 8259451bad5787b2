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

import keras
import numpy as np
import tensorflow as tf

from nsynth_contracts import features
from nsynth_contracts import musicnn_weights
from nsynth_contracts.musicnn_representation import CLIP_LAYER_WIDTHS
from nsynth_contracts.musicnn_representation import DEFAULT
from nsynth_contracts.musicnn_representation import FRAME_LAYER_WIDTHS
from nsynth_contracts.musicnn_representation import MusicnnRepresentation

_PACKAGE = 'nsynth'
# The largest finite float16: louder mel bins saturate there instead of
# becoming inf (musicnn's float16 would overflow; no real note comes near).
_FLOAT16_MAX = 65504.0


def log_mel(waveforms: tf.Tensor,
            params: MusicnnRepresentation = DEFAULT) -> tf.Tensor:
  """musicnn's input: its log-compressed librosa mel spectrogram.

  Args:
    waveforms: float32 [batch, samples] in [-1, 1] at params.sample_rate_hz,
      any length: padded or trimmed to params.clip_seconds.
    params: embedding parameters.

  Returns:
    float32 [batch, num_frames, num_mel_bands]; [batch, 251, 96] for 4 s.
  """
  spectrogram = params.spectrogram_params
  clips = features.pad_or_trim(waveforms, spectrogram)              # [B, S]
  mel = features.mel_power_spectrogram(clips, spectrogram)          # [B, T, M]
  # musicnn rounds the mel power to float16 before the log (its extractor,
  # and the stored spectrograms it was trained on).
  mel = round_to_float16(mel)
  return tf.math.log(params.log_gain * mel + 1.0) / tf.math.log(10.0)


def round_to_float16(x: tf.Tensor) -> tf.Tensor:
  """The nearest float16 value (ties to even), as float32, for x >= 0.

  Computed on the bits: XLA may drop a float32 -> float16 -> float32 round
  trip as excess precision, so tf.cast would round only without jit_compile.
  Beyond the largest float16 the result saturates there instead of inf.

  Args:
    x: float32, non-negative (a power spectrogram).

  Returns:
    float32, same shape, every value exactly representable in float16.
  """
  x = tf.minimum(x, _FLOAT16_MAX)
  bits = tf.bitcast(x, tf.int32)
  # Normal range: keep 10 of float32's 23 mantissa bits, ties to even; a
  # carry out of the mantissa moves the exponent up, as it should.
  lowest_kept = tf.bitwise.bitwise_and(tf.bitwise.right_shift(bits, 13), 1)
  rounded = tf.bitwise.bitwise_and(bits + 0xFFF + lowest_kept, ~0x1FFF)
  normal = tf.bitcast(rounded, tf.float32)
  # Below 2**-14, float16 is subnormal: a fixed step of 2**-24.
  subnormal = tf.round(x * 2.0**24) * 2.0**-24
  return tf.where(x < 2.0**-14, subnormal, normal)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MusicnnLogMel(keras.layers.Layer):
  """[batch, samples] waveforms -> [batch, frames, bands]: `log_mel`."""

  def __init__(self, params: dict | None = None, **kwargs):
    super().__init__(**kwargs)
    self.params = MusicnnRepresentation.from_params(params or {})

  def call(self, waveforms):
    return log_mel(waveforms, self.params)

  def compute_output_shape(self, input_shape):
    return (input_shape[0], self.params.num_frames,
            self.params.num_mel_bands)

  def get_config(self):
    return {**super().get_config(), 'params': self.params.params_json()}


# tf.compat.v1.layers.batch_normalization's default, which musicnn used.
_BATCH_NORM_EPSILON = 1e-3


def _norm(name):
  return keras.layers.BatchNormalization(epsilon=_BATCH_NORM_EPSILON,
                                         name=name)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FrequencyMaxConv(keras.layers.Layer):
  """musicnn's front-end block: convolution, ReLU, batch normalisation, then
  the maximum over every frequency position.

  [batch, frames, bands, 1] -> [batch, frames, filters]. Computed in another
  order with the same result: batch normalisation is one increasing (gamma
  >= 0) or decreasing (gamma < 0) line per filter, and ReLU is increasing,
  so the maximum over frequency of the normalised maps is the normalised
  maximum of the raw convolution, or of its minimum where gamma < 0. Those
  filters are convolved negated, so that one maximum serves both. The full
  [frames, positions, filters] maps are then only written by the
  convolution and read once by the maximum: normalising and rectifying them
  whole cost about a sixth of the network's time and most of its memory.
  """

  def __init__(self, filters: int, kernel_size: tuple[int, int],
               padding: str, **kwargs):
    super().__init__(**kwargs)
    self.filters = filters
    self.kernel_size = tuple(kernel_size)
    self.padding = padding

  def build(self, input_shape):
    def weight(name, shape, initializer='zeros'):
      return self.add_weight(name=name, shape=shape, trainable=False,
                             initializer=initializer)
    # The order of musicnn_weights.checkpoint_names: convolution, then norm.
    self.kernel = weight('kernel', (*self.kernel_size, input_shape[-1],
                                    self.filters))
    self.bias = weight('bias', (self.filters,))
    self.gamma = weight('gamma', (self.filters,), 'ones')
    self.beta = weight('beta', (self.filters,))
    self.moving_mean = weight('moving_mean', (self.filters,))
    self.moving_variance = weight('moving_variance', (self.filters,), 'ones')

  def call(self, spectrogram):
    sign = tf.where(self.gamma < 0.0, -1.0, 1.0)                    # [C]
    maps = tf.nn.bias_add(tf.nn.conv2d(
        spectrogram, self.kernel * sign, strides=1,
        padding=self.padding.upper()), self.bias * sign)          # [B,T,F,C]
    # A pooling window over every position: oneDNN's pooling, several
    # times faster than a reduction over the middle axis (in bfloat16 most).
    extreme = tf.nn.max_pool2d(maps, (1, maps.shape[2]), strides=1,
                               padding='VALID')[:, :, 0] * sign    # [B,T,C]
    return tf.nn.batch_normalization(
        tf.nn.relu(extreme), self.moving_mean, self.moving_variance,
        self.beta, self.gamma, _BATCH_NORM_EPSILON)

  def compute_output_shape(self, input_shape):
    return (input_shape[0], input_shape[1], self.filters)

  def get_config(self):
    return {**super().get_config(), 'filters': self.filters,
            'kernel_size': list(self.kernel_size), 'padding': self.padding}


def _frontend(spectrogram, num_mel_bands):
  """[B, T, M] log-mel -> [B, T, 561]: musicnn's timbral + temporal maps."""
  x = keras.layers.Reshape((-1, num_mel_bands, 1), name='bands')(spectrogram)
  x = _norm('input_norm')(x)
  # Timbral: 7 frames by 40% / 70% of the bands, zero-padded in time only.
  padded = keras.layers.ZeroPadding2D(((3, 3), (0, 0)), name='pad_time')(x)
  timbral = [FrequencyMaxConv(204, (7, bands), 'valid',
                              name=f'timbral_7x{bands}')(padded)
             for bands in (int(0.4 * num_mel_bands),
                           int(0.7 * num_mel_bands))]
  # Temporal: one band by 128, 64, 32 frames, 'same' in time.
  temporal = [FrequencyMaxConv(51, (frames, 1), 'same',
                               name=f'temporal_{frames}')(x)
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
                  num_mel_bands: int = DEFAULT.num_mel_bands,
                  layers: Sequence[str] | None = None) -> keras.Model:
  """musicnn from its log-mel input to the layers we expose.

  Args:
    weights: musicnn_weights.read_weights(model_name).
    num_mel_bands: 96, as musicnn was trained.
    layers: the outputs wanted (None: all); only what they need is run.

  Returns:
    A frozen model: float32 [batch, frames, bands], any number of frames ->
    {layer: [batch, frames, width]} for FRAME_LAYER_WIDTHS and
    {layer: [batch, width]} for CLIP_LAYER_WIDTHS.
  """
  spectrogram = keras.Input((None, num_mel_bands), name='log_mel')
  timbral, temporal = _frontend(spectrogram, num_mel_bands)
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


@keras.saving.register_keras_serializable(package=_PACKAGE)
class TimeStatistics(keras.layers.Layer):
  """[batch, frames, channels] -> [batch, channels * len(statistics)]: each
  channel's statistics over time, in the order named (TIME_STATISTICS)."""

  def __init__(self, statistics: Sequence[str], **kwargs):
    super().__init__(**kwargs)
    self.statistics = tuple(statistics)

  def call(self, maps):
    summaries = {
        'mean': lambda: keras.ops.mean(maps, axis=1),
        'max': lambda: keras.ops.max(maps, axis=1),
        'std': lambda: keras.ops.std(maps, axis=1),
        'mean_abs_delta': lambda: keras.ops.mean(
            keras.ops.abs(maps[:, 1:] - maps[:, :-1]), axis=1),
    }
    return keras.ops.concatenate([summaries[s]() for s in self.statistics],
                                 axis=-1)

  def get_config(self):
    return {**super().get_config(), 'statistics': list(self.statistics)}


def _pool(tensor, layer: str, params: MusicnnRepresentation, name: str):
  """Frame layers: params.time_statistics over time; clip layers as they
  are."""
  if layer not in FRAME_LAYER_WIDTHS:
    return tensor
  return TimeStatistics(params.time_statistics, name=name)(tensor)


def build_embedding_model(weights: dict[str, np.ndarray],
                          params: MusicnnRepresentation = DEFAULT
                          ) -> keras.Model:
  """The embedding contract: waveforms -> params.layer, pooled.

  Args:
    weights: musicnn_weights.read_weights(params.model_name).
    params: embedding parameters.

  Returns:
    A frozen model: float32 [batch, samples] 16 kHz waveforms in [-1, 1], any
    length (padded or trimmed to one clip) -> float32 [batch,
    params.size]: for frame layers, params.time_statistics of each
    channel over time, concatenated in that order (3,012 values for
    'midend' with the default four); the layer itself for clip layers.
  """
  return _waveform_model(weights, params, (params.layer,))


def build_all_layers_model(weights: dict[str, np.ndarray],
                           params: MusicnnRepresentation = DEFAULT
                           ) -> keras.Model:
  """Every candidate layer at once, pooled as build_embedding_model pools
  it: {layer: [batch, MusicnnRepresentation(layer=layer).size]}. For
  choosing the layer; params.layer is ignored."""
  return _waveform_model(weights, params,
                         (*FRAME_LAYER_WIDTHS, *CLIP_LAYER_WIDTHS))


def _waveform_model(weights, params, layers) -> keras.Model:
  waveforms = keras.Input((None,), name='audio')
  spectrogram = MusicnnLogMel(params.params_json(), name='log_mel')(waveforms)
  network = build_network(weights, params.num_mel_bands, layers)
  maps = network(spectrogram)
  outputs = {layer: _pool(maps[layer], layer, params, f'{layer}_embedding')
             for layer in layers}
  if len(layers) == 1:
    outputs = outputs[layers[0]]
  model = keras.Model(waveforms, outputs,
                      name=f'{params.model_name}_embedding')
  model.trainable = False
  return model
