"""Extra training examples: the same note as another recording would give it.

An instrument from a library never heard differs from the ones trained on
in ways a recording chain also varies: level, equalisation and spectral
tilt, the room, the microphone's bandwidth, background noise, a slightly
different tuning or speed. Each augmented copy of a training note draws one
such chain at random and plays the note through it. The effects are
Spotify's pedalboard (C++, releases the GIL); the speed change is soxr's
resampler; only the noise is NumPy (scaled Gaussian samples).

Deterministic: a copy's parameters come from a hash of (seed, note_str,
copy index), so the same job writes the same records on any runner.
"""

import dataclasses

import numpy as np

from nsynth_contracts import feature_params
from nsynth_contracts import stable_random


@dataclasses.dataclass(frozen=True)
class AugmentationConfig:
  """How many copies, and the range of every transformation (recorded in
  the manifest). Ranges are (low, high), drawn uniformly unless noted."""
  copies: int = 0                       # extra versions of each train note
  seed: int = 0
  gain_db: tuple[float, float] = (-12.0, 6.0)
  low_shelf_hz: float = 300.0
  low_shelf_db: tuple[float, float] = (-6.0, 6.0)
  high_shelf_hz: float = 3000.0
  high_shelf_db: tuple[float, float] = (-6.0, 6.0)
  peak_hz: tuple[float, float] = (200.0, 5000.0)      # log-uniform
  peak_db: tuple[float, float] = (-6.0, 6.0)
  peak_q: tuple[float, float] = (0.7, 2.0)
  speed: tuple[float, float] = (0.98, 1.02)   # pitch and time: +-35 cents
  reverb_probability: float = 0.7
  reverb_room_size: tuple[float, float] = (0.1, 0.7)
  reverb_wet: tuple[float, float] = (0.05, 0.35)
  highpass_hz: tuple[float, float] = (20.0, 150.0)
  lowpass_probability: float = 0.5
  lowpass_hz: tuple[float, float] = (3000.0, 7900.0)   # log-uniform
  noise_snr_db: tuple[float, float] = (20.0, 45.0)
  peak_limit: float = 0.99                  # the result never clips


NO_AUGMENTATION = AugmentationConfig()
# The default recipe's copies per training note (make demo, and the
# generalization benchmark). None: on libraries never heard (20 MFCCs, same
# seeds), two copies took the TCN from 0.497 to 0.484 and the stats MLP from
# 0.476 to 0.469, at three times the training time (BUILD_NOTES.md,
# "Unheard instruments").
# The flag stays for data where it pays.
RECIPE_COPIES = 0


def _rng(seed: int, note_str: str, copy: int) -> np.random.Generator:
  return stable_random.generator(f'{seed}\0{note_str}\0{copy}')


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
  return float(np.exp(rng.uniform(np.log(low), np.log(high))))


@dataclasses.dataclass(frozen=True)
class Chain:
  """One copy's drawn parameters."""
  gain_db: float
  low_shelf_db: float
  high_shelf_db: float
  peak_hz: float
  peak_db: float
  peak_q: float
  speed: float
  reverb: tuple[float, float] | None     # (room size, wet level)
  highpass_hz: float
  lowpass_hz: float | None
  noise_snr_db: float


def draw_chain(config: AugmentationConfig, note_str: str, copy: int) -> Chain:
  """The transformations of copy `copy` (1-based) of a note."""
  rng = _rng(config.seed, note_str, copy)
  c = config
  reverb = None
  if rng.uniform() < c.reverb_probability:
    reverb = (rng.uniform(*c.reverb_room_size), rng.uniform(*c.reverb_wet))
  lowpass = (_log_uniform(rng, *c.lowpass_hz)
             if rng.uniform() < c.lowpass_probability else None)
  return Chain(
      gain_db=rng.uniform(*c.gain_db),
      low_shelf_db=rng.uniform(*c.low_shelf_db),
      high_shelf_db=rng.uniform(*c.high_shelf_db),
      peak_hz=_log_uniform(rng, *c.peak_hz),
      peak_db=rng.uniform(*c.peak_db),
      peak_q=rng.uniform(*c.peak_q),
      speed=rng.uniform(*c.speed),
      reverb=reverb,
      highpass_hz=rng.uniform(*c.highpass_hz),
      lowpass_hz=lowpass,
      noise_snr_db=rng.uniform(*c.noise_snr_db))


def apply_chain(clip: np.ndarray, chain: Chain, config: AugmentationConfig,
                note_str: str, copy: int,
                params: feature_params.FeatureParams = (
                    feature_params.DEFAULT_PARAMS)) -> np.ndarray:
  """float32 [clip_samples] -> the same length, played through `chain`."""
  import pedalboard
  import soxr
  rate = params.sample_rate_hz
  # Played faster or slower, as a tape or a detuned sampler would.
  x = soxr.resample(clip, rate * chain.speed, rate).astype(np.float32)
  effects = [
      pedalboard.HighpassFilter(cutoff_frequency_hz=chain.highpass_hz),
      pedalboard.LowShelfFilter(cutoff_frequency_hz=config.low_shelf_hz,
                                gain_db=chain.low_shelf_db),
      pedalboard.HighShelfFilter(cutoff_frequency_hz=config.high_shelf_hz,
                                 gain_db=chain.high_shelf_db),
      pedalboard.PeakFilter(cutoff_frequency_hz=chain.peak_hz,
                            gain_db=chain.peak_db, q=chain.peak_q),
  ]
  if chain.reverb:
    room_size, wet = chain.reverb
    effects.append(pedalboard.Reverb(room_size=room_size, wet_level=wet,
                                     dry_level=1.0 - wet / 2))
  if chain.lowpass_hz:
    effects.append(pedalboard.LowpassFilter(cutoff_frequency_hz=chain.lowpass_hz))
  effects.append(pedalboard.Gain(gain_db=chain.gain_db))
  x = pedalboard.Pedalboard(effects)(x, rate)
  x = feature_params.pad_or_trim_numpy(np.asarray(x, np.float32), params)
  power = float(np.mean(x ** 2))
  if power > 0:
    noise_rng = _rng(config.seed + 1, note_str, copy)
    scale = np.sqrt(power / 10 ** (chain.noise_snr_db / 10))
    x = x + (scale * noise_rng.standard_normal(x.shape)).astype(np.float32)
  peak = float(np.max(np.abs(x)))
  if peak > config.peak_limit:
    x *= config.peak_limit / peak
  return x.astype(np.float32)


def augmented_copies(clip: np.ndarray, note_str: str,
                     config: AugmentationConfig,
                     params: feature_params.FeatureParams = (
                         feature_params.DEFAULT_PARAMS)
                     ) -> list[np.ndarray]:
  """Copies 1..config.copies of a note, each float32 [clip_samples]."""
  return [apply_chain(clip, draw_chain(config, note_str, copy), config,
                      note_str, copy, params)
          for copy in range(1, config.copies + 1)]
