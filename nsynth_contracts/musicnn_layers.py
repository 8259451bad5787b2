"""musicnn's own Keras layers: its input, its front-end block, its pooling.

The parts of nsynth_contracts.musicnn_network that are not stock Keras
layers, each registered for Keras's saving, in core TensorFlow ops.
"""

from collections.abc import Sequence

import keras
import tensorflow as tf

from nsynth_common import dataclass_json
from nsynth_contracts import feature_params
from nsynth_contracts import features

_PACKAGE = 'nsynth'
# The largest finite float16: louder mel bins saturate there instead of
# becoming inf (musicnn's float16 would overflow; no real note comes near).
_FLOAT16_MAX = 65504.0
# tf.compat.v1.layers.batch_normalization's default, which musicnn used.
BATCH_NORM_EPSILON = 1e-3


def log_mel(waveforms: tf.Tensor, spectrogram: feature_params.FeatureParams,
             log_gain: float) -> tf.Tensor:
  """musicnn's input: its log-compressed librosa mel spectrogram.

  Args:
    waveforms: float32 [batch, samples] in [-1, 1] at the spectrogram's
      rate, any length: padded or trimmed to its clip.
    spectrogram: musicnn's STFT and mel bands.
    log_gain: the result is log10(log_gain * mel + 1).

  Returns:
    float32 [batch, num_frames, num_mel_bands]; [batch, 251, 96] for 4 s.
  """
  clips = features.pad_or_trim(waveforms, spectrogram)              # [B, S]
  mel = features.mel_power_spectrogram(clips, spectrogram)          # [B, T, M]
  # musicnn rounds the mel power to float16 before the log (its extractor,
  # and the stored spectrograms it was trained on).
  mel = round_to_float16(mel)
  return tf.math.log(log_gain * mel + 1.0) / tf.math.log(10.0)


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

  def __init__(self, spectrogram: dict, log_gain: float, **kwargs):
    """Args: spectrogram: the spectrogram's FeatureParams as JSON; log_gain:
    the network's input is log10(log_gain * mel + 1)."""
    super().__init__(**kwargs)
    self.spectrogram = dataclass_json.from_json(
        feature_params.FeatureParams, spectrogram, 'spectrogram')
    self.log_gain = float(log_gain)

  def call(self, waveforms):
    return log_mel(waveforms, self.spectrogram, self.log_gain)

  def compute_output_shape(self, input_shape):
    return (input_shape[0], self.spectrogram.num_frames,
            self.spectrogram.num_mel_bands)

  def get_config(self):
    return {**super().get_config(), 'spectrogram': dataclass_json.to_json(
        self.spectrogram),
            'log_gain': self.log_gain}


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

  With `arithmetic` 'bfloat16' the convolution multiplies bfloat16 inputs
  and weights (accumulating in float32), for CPUs that do so natively; the
  maximum is taken in bfloat16 (exact for its values), and the bias, ReLU
  and normalisation stay float32.
  """

  def __init__(self, filters: int, kernel_size: tuple[int, int],
               padding: str, arithmetic: str = 'float32', **kwargs):
    super().__init__(**kwargs)
    if arithmetic not in ('float32', 'bfloat16'):
      raise ValueError(f'arithmetic {arithmetic!r} is not float32 or '
                       f'bfloat16')
    self.filters = filters
    self.kernel_size = tuple(kernel_size)
    self.padding = padding
    self.arithmetic = arithmetic

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
    kernel = self.kernel * sign
    if self.arithmetic == 'bfloat16':
      spectrogram = tf.cast(spectrogram, tf.bfloat16)
      kernel = tf.cast(kernel, tf.bfloat16)
    maps = tf.nn.conv2d(spectrogram, kernel, strides=1,
                        padding=self.padding.upper())             # [B,T,F,C]
    # A pooling window over every position: oneDNN's pooling, several
    # times faster than a reduction over the middle axis (in bfloat16 most).
    # The bias is one number per filter, so it is added after the maximum.
    top = tf.nn.max_pool2d(maps, (1, maps.shape[2]), strides=1,
                           padding='VALID')[:, :, 0]              # [B,T,C]
    extreme = (tf.cast(top, tf.float32) + self.bias * sign) * sign
    return tf.nn.batch_normalization(
        tf.nn.relu(extreme), self.moving_mean, self.moving_variance,
        self.beta, self.gamma, BATCH_NORM_EPSILON)

  def compute_output_shape(self, input_shape):
    return (input_shape[0], input_shape[1], self.filters)

  def get_config(self):
    return {**super().get_config(), 'filters': self.filters,
            'kernel_size': list(self.kernel_size), 'padding': self.padding,
            'arithmetic': self.arithmetic}


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
