"""The MFCC feature contract: waveform in, librosa-equivalent MFCCs out.

One pure-TensorFlow function, `waveform_to_mfcc`, is the only place features
are computed. The Beam job calls it on batches of decoded notes, the trainer
never recomputes features, and the exported SavedModel calls it inside its
serving signature, so training and serving cannot disagree.

Only core TensorFlow ops are used (TF Serving's standard binary has no
tensorflow-io kernels). The defaults reproduce
`librosa.feature.mfcc(y, sr=16000, n_mfcc=20)` with librosa >= 0.10 defaults.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class FeatureParams:
  """Every knob of the feature computation, with units in the names."""

  sample_rate_hz: int = 16000
  clip_seconds: float = 4.0
  fft_length_samples: int = 2048
  hop_length_samples: int = 512
  num_mel_bands: int = 128
  mel_min_hz: float = 0.0
  mel_max_hz: float | None = None  # None: Nyquist, as librosa.
  num_mfcc: int = 20
  log_floor_power: float = 1e-10   # librosa's `amin`.
  top_db: float = 80.0

  @property
  def clip_samples(self) -> int:
    return int(round(self.sample_rate_hz * self.clip_seconds))

  @property
  def num_frames(self) -> int:
    # Centred STFT: the clip is padded by fft_length // 2 on both sides.
    return 1 + self.clip_samples // self.hop_length_samples

  @property
  def num_fft_bins(self) -> int:
    return self.fft_length_samples // 2 + 1

  @property
  def mfcc_shape(self) -> tuple[int, int]:
    """(frames, coefficients) of one clip's features."""
    return (self.num_frames, self.num_mfcc)

  def to_json(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_json(cls, fields: dict) -> "FeatureParams":
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(fields) - known
    if unknown:
      raise ValueError(f'Unknown feature parameters: {sorted(unknown)}')
    return cls(**fields)


DEFAULT_PARAMS = FeatureParams()


# Slaney's mel scale (librosa's default, htk=False): linear below 1 kHz at
# 200/3 Hz per mel, logarithmic above with 27 mels per factor of 6.4.
_SLANEY_HZ_PER_MEL = 200.0 / 3
_SLANEY_LOG_START_HZ = 1000.0
_SLANEY_LOG_START_MEL = _SLANEY_LOG_START_HZ / _SLANEY_HZ_PER_MEL
_SLANEY_LOG_STEP = np.log(6.4) / 27.0


def _hz_to_mel_slaney(hz: np.ndarray) -> np.ndarray:
  hz = np.asarray(hz, dtype=np.float64)
  log = _SLANEY_LOG_START_MEL + np.log(
      np.maximum(hz, _SLANEY_LOG_START_HZ) / _SLANEY_LOG_START_HZ
  ) / _SLANEY_LOG_STEP
  return np.where(hz >= _SLANEY_LOG_START_HZ, log, hz / _SLANEY_HZ_PER_MEL)


def _mel_to_hz_slaney(mel: np.ndarray) -> np.ndarray:
  mel = np.asarray(mel, dtype=np.float64)
  log = _SLANEY_LOG_START_HZ * np.exp(
      _SLANEY_LOG_STEP * (mel - _SLANEY_LOG_START_MEL))
  return np.where(mel >= _SLANEY_LOG_START_MEL, log, mel * _SLANEY_HZ_PER_MEL)


@functools.lru_cache(maxsize=8)
def slaney_mel_matrix(params: FeatureParams = DEFAULT_PARAMS) -> np.ndarray:
  """Mel filterbank as librosa.filters.mel builds it by default.

  Triangles on the Slaney mel scale, each scaled to unit area
  (`norm='slaney'`), unlike tf.signal.linear_to_mel_weight_matrix (HTK scale,
  peak 1).

  Returns:
    float32 [num_fft_bins, num_mel_bands], so that `power @ matrix` is mel power.
  """
  max_hz = params.mel_max_hz or params.sample_rate_hz / 2.0
  fft_hz = np.linspace(0, params.sample_rate_hz / 2.0, params.num_fft_bins)
  mel_edges = np.linspace(_hz_to_mel_slaney(params.mel_min_hz),
                          _hz_to_mel_slaney(max_hz), params.num_mel_bands + 2)
  edge_hz = _mel_to_hz_slaney(mel_edges)
  band_widths_hz = np.diff(edge_hz)
  ramps = edge_hz[:, np.newaxis] - fft_hz[np.newaxis, :]
  lower = -ramps[:-2] / band_widths_hz[:-1, np.newaxis]
  upper = ramps[2:] / band_widths_hz[1:, np.newaxis]
  weights = np.maximum(0.0, np.minimum(lower, upper))
  weights *= (2.0 / (edge_hz[2:] - edge_hz[:-2]))[:, np.newaxis]
  return weights.T.astype(np.float32)


@functools.lru_cache(maxsize=8)
def dct_ii_ortho_matrix(num_inputs: int, num_outputs: int) -> np.ndarray:
  """The first `num_outputs` orthonormal DCT-II basis vectors as columns.

  A [num_inputs, num_outputs] matmul is cheaper than tf.signal.dct followed by
  slicing, and it is exactly scipy's `dct(type=2, norm='ortho')`.
  """
  n = np.arange(num_inputs)[:, np.newaxis]
  k = np.arange(num_outputs)[np.newaxis, :]
  basis = np.cos(np.pi * k * (2 * n + 1) / (2.0 * num_inputs))
  basis *= np.sqrt(2.0 / num_inputs)
  basis[:, 0] /= np.sqrt(2.0)
  return basis.astype(np.float32)


def pad_or_trim(waveforms: tf.Tensor,
                params: FeatureParams = DEFAULT_PARAMS) -> tf.Tensor:
  """Zero-pads at the end or trims the end to exactly one clip.

  Args:
    waveforms: float32 [batch, samples], any number of samples.
    params: feature parameters.

  Returns:
    float32 [batch, clip_samples].
  """
  waveforms = tf.convert_to_tensor(waveforms, dtype=tf.float32)
  target = params.clip_samples
  trimmed = waveforms[:, :target]
  missing = target - tf.shape(trimmed)[1]
  padded = tf.pad(trimmed, [[0, 0], [0, missing]])
  return tf.ensure_shape(padded, [None, target])


def pad_or_trim_numpy(waveform: np.ndarray,
                      params: FeatureParams = DEFAULT_PARAMS) -> np.ndarray:
  """`pad_or_trim` for one mono waveform in NumPy, for the Beam job's decoder.

  Kept beside the TF version so the two rules cannot drift; a test checks that
  they agree.
  """
  target = params.clip_samples
  if waveform.shape[0] == target and waveform.dtype == np.float32:
    return np.ascontiguousarray(waveform)  # NSynth's own notes: no copy.
  out = np.zeros(target, dtype=np.float32)
  n = min(target, waveform.shape[0])
  out[:n] = waveform[:n]
  return out


def waveform_to_mfcc(waveforms: tf.Tensor,
                     params: FeatureParams = DEFAULT_PARAMS) -> tf.Tensor:
  """MFCCs of a batch of clips, equal to librosa.feature.mfcc (transposed).

  Args:
    waveforms: float32 [batch, samples] in [-1, 1] at params.sample_rate_hz.
      Any length: clips are padded or trimmed to params.clip_seconds first.
    params: feature parameters.

  Returns:
    float32 [batch, num_frames, num_mfcc]; for 4 s at 16 kHz, [batch, 126, 20].
  """
  clips = pad_or_trim(waveforms, params)                        # [B, S]
  half = params.fft_length_samples // 2
  # librosa centres frames with zero padding (pad_mode='constant').
  centred = tf.pad(clips, [[0, 0], [half, half]])               # [B, S + N]
  stft = tf.signal.stft(
      centred,
      frame_length=params.fft_length_samples,
      frame_step=params.hop_length_samples,
      fft_length=params.fft_length_samples,
      window_fn=functools.partial(tf.signal.hann_window, periodic=True),
      pad_end=False)                                            # [B, T, F]
  power = tf.math.square(tf.math.real(stft)) + tf.math.square(
      tf.math.imag(stft))                                       # [B, T, F]
  mel_power = tf.tensordot(
      power, tf.constant(slaney_mel_matrix(params)), axes=1)    # [B, T, M]
  log_mel = 10.0 * tf.math.log(
      tf.maximum(mel_power, params.log_floor_power)) / tf.math.log(10.0)
  # top_db is relative to each clip's own loudest bin, as librosa per call.
  loudest = tf.reduce_max(log_mel, axis=[1, 2], keepdims=True)  # [B, 1, 1]
  log_mel = tf.maximum(log_mel, loudest - params.top_db)        # [B, T, M]
  dct = tf.constant(dct_ii_ortho_matrix(params.num_mel_bands, params.num_mfcc))
  return tf.tensordot(log_mel, dct, axes=1)                     # [B, T, C]
