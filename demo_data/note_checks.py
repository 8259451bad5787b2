"""The checks every synthesised note passes before it is written.

A drawn instrument is a random point in a model's control space, and many
points do not play: a lip that never buzzes, a jet that overblows an octave,
a string that is silent before its first second is over. So every rendered
note is checked, and what fails is dropped (demo_data.synthesis redraws the
instrument when too many of its notes fail):

- finite: no NaN or infinity anywhere;
- sounding: the project's own rule for what a listener hears
  (window_params.sounding_numpy), applied to the model's raw output, before
  any gain, so that a model that barely moves is not amplified into a note;
- pitched (families that have a pitch, which are all nine): the median YIN
  estimate (librosa.yin, independent of every model) over the loud frames of
  the held part lies within PITCH_TOLERANCE_CENTS of the MIDI pitch. An
  octave or a fifth off is a failure like any other.

Loudness: each note is peak-normalised to a level that rises with its
velocity (`velocity_peak`), so a louder velocity is never quieter.
"""

import dataclasses
import functools

import numpy as np

from nsynth_contracts import window_params

PITCH_TOLERANCE_CENTS = 50.0


@dataclasses.dataclass(frozen=True)
class PitchParams:
  """How the f0 of a note's held part is estimated."""
  sample_rate_hz: int = 16000
  held_seconds: float = 3.0
  frame_samples: int = 2048
  hop_samples: int = 1024
  min_f0_hz: float = 30.0       # below MIDI 28 (41 Hz), the lowest bass note
  max_f0_hz: float = 4200.0     # above MIDI 96 (2093 Hz), an octave to spare
  loud_frame_db: float = 20.0   # frames this far below the loudest are left out


DEFAULT_PITCH = PitchParams()


def midi_hz(pitch: float) -> float:
  """Equal-tempered frequency of a MIDI pitch (A4 = 69 = 440 Hz)."""
  return 440.0 * 2.0 ** ((pitch - 69.0) / 12.0)


def estimate_f0_hz(waveform: np.ndarray,
                   params: PitchParams = DEFAULT_PITCH) -> float:
  """Median YIN f0 over the loud frames of the held part.

  Args:
    waveform: float [samples] at params.sample_rate_hz.

  Returns:
    Hz; NaN when the held part is shorter than one frame or silent.
  """
  import librosa
  held = np.asarray(waveform[:int(params.held_seconds *
                                  params.sample_rate_hz)], np.float32)
  if len(held) < params.frame_samples or not np.any(held):
    return float('nan')
  f0 = librosa.yin(held, fmin=params.min_f0_hz, fmax=params.max_f0_hz,
                   sr=params.sample_rate_hz,
                   frame_length=params.frame_samples,
                   hop_length=params.hop_samples, center=False)   # [F]
  frames = librosa.util.frame(held, frame_length=params.frame_samples,
                              hop_length=params.hop_samples)      # [N, F]
  rms = np.sqrt(np.mean(np.square(frames), axis=0))[:len(f0)]
  loud = rms >= rms.max() * 10.0 ** (-params.loud_frame_db / 20.0)
  return float(np.median(f0[loud]))


def cents_off(f0_hz: float, pitch: int) -> float:
  """How far f0 lies from the MIDI pitch, in cents (NaN stays NaN)."""
  return 1200.0 * float(np.log2(f0_hz / midi_hz(pitch)))


def note_problem(raw: np.ndarray, pitch: int,
                 params: PitchParams = DEFAULT_PITCH) -> str | None:
  """Why a rendered note cannot be kept, or None when it passes.

  Args:
    raw: float [samples], the model's output at 16 kHz before any gain.
    pitch: the MIDI pitch the note was played at.

  Returns:
    'not finite', 'no sound', or 'off pitch' (NaN f0 included).
  """
  if not np.all(np.isfinite(raw)):
    return 'not finite'
  if not window_params.sounding_numpy(raw[np.newaxis])[0]:
    return 'no sound'
  error = cents_off(estimate_f0_hz(raw, params), pitch)
  if not abs(error) <= PITCH_TOLERANCE_CENTS:
    return 'off pitch'
  return None


@functools.cache
def compile_checks() -> None:
  """Compiles the checks' numba code (librosa's YIN) in this process.

  numba caches it beside librosa, and processes that compile it at once
  can leave a cache that crashes every later process loading it (SIGSEGV
  in YIN, seen on a fresh install). Calling this before starting workers
  that run the checks leaves them a complete cache to load.
  """
  t = np.arange(DEFAULT_PITCH.sample_rate_hz * 4) / DEFAULT_PITCH.sample_rate_hz
  note_problem(0.5 * np.sin(2 * np.pi * midi_hz(60) * t), 60)


def velocity_peak(velocity: int) -> float:
  """The peak a note of this MIDI velocity is normalised to: -1 dBFS at
  127, 18 dB lower at 25, linear in dB between, so it rises strictly."""
  return 10.0 ** ((-1.0 - 18.0 * (127 - velocity) / 102.0) / 20.0)


def normalise(raw: np.ndarray, velocity: int) -> np.ndarray:
  """float32 [samples]: raw scaled to velocity_peak(velocity)."""
  peak = float(np.max(np.abs(raw)))
  return (raw * (velocity_peak(velocity) / peak)).astype(np.float32)
