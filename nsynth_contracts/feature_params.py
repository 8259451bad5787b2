"""The NumPy half of the feature contract: parameters and constant matrices.

Kept free of TensorFlow so that processes which only describe or prepare
audio (the Beam launcher, the WAV decoder) never pay for importing it;
nsynth_contracts.features, the TensorFlow half, builds on these.
"""

import dataclasses
import functools

import numpy as np


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
  # All 128: the whole log-mel envelope, orthonormally rotated. The seed
  # recipe (and librosa's default) kept 20; on libraries never heard,
  # 20 -> 40 -> 64 -> 128 raised accuracy at every step (BUILD_NOTES.md,
  # "Unheard instruments").
  num_mfcc: int = 128
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
    float32 [num_fft_bins, num_mel_bands]: `power @ matrix` is mel power.
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


@dataclasses.dataclass(frozen=True)
class MelBandGroup:
  """Consecutive mel bands and the only FFT bins their triangles touch."""
  first_bin: int
  end_bin: int                  # exclusive
  weights: np.ndarray           # float32 [end_bin - first_bin, bands]


@functools.lru_cache(maxsize=8)
def mel_band_groups(params: FeatureParams = DEFAULT_PARAMS,
                    bands_per_group: int = 16) -> tuple[MelBandGroup, ...]:
  """The mel matrix cut into groups of bands, each with its bin range.

  Each bin feeds at most two adjacent bands, so the dense [bins, bands]
  product is 98% multiplications by zero. Groups of 16 bands touch about 134
  bins each: the grouped products do 7.7x fewer multiply-adds and give the
  same sums (concatenated, they are `power @ slaney_mel_matrix(params)`).
  """
  matrix = slaney_mel_matrix(params)
  groups = []
  for first_band in range(0, params.num_mel_bands, bands_per_group):
    columns = matrix[:, first_band:first_band + bands_per_group]
    touched = np.flatnonzero(columns.any(axis=1))
    first_bin, end_bin = int(touched[0]), int(touched[-1]) + 1
    groups.append(MelBandGroup(first_bin, end_bin,
                               columns[first_bin:end_bin].copy()))
  return tuple(groups)


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


def pad_or_trim_numpy(waveform: np.ndarray,
                      params: FeatureParams = DEFAULT_PARAMS) -> np.ndarray:
  """features.pad_or_trim for one mono waveform, in NumPy, for the decoder.

  A test checks that the two agree, so the rule cannot drift.
  """
  target = params.clip_samples
  if waveform.shape[0] == target and waveform.dtype == np.float32:
    return np.ascontiguousarray(waveform)  # NSynth's own notes: no copy.
  out = np.zeros(target, dtype=np.float32)
  n = min(target, waveform.shape[0])
  out[:n] = waveform[:n]
  return out
