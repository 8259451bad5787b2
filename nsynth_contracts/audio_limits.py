"""What audio may be, and the words it is refused in.

Every entry point that takes audio (the Beam job's notes and recordings,
nsynth-predict, nsynth-client, the serving signatures) refuses the same
input in the same words: the messages below are the only copy of them. Some
are templates with `{}` fields, filled by Python here and by the serving
graph (serving.wav_graph), which formats the same values the same way.

A refusal is an `AudioError` with a stable `kind` (the dead-letter key) and a
reason that never quotes the file's bytes.
"""

import dataclasses
import math

import numpy as np


@dataclasses.dataclass(frozen=True)
class AudioLimits:
  """What a file may declare before any of it is decoded."""
  min_sample_rate_hz: int = 8_000       # telephone audio; below is no music
  max_sample_rate_hz: int = 384_000
  max_channels: int = 8                 # 7.1 surround
  max_file_bytes: int = 64 * 2**20      # a note: 4 s of 8 x 64-bit at 256 kHz
  # |sample| above this is no waveform in [-1, 1] but a scaling mistake
  # (int16 values in a float WAV, say); the features of such input mean
  # nothing, and past ~1e19 they overflow to NaN.
  max_abs_sample: float = 4.0


DEFAULT_LIMITS = AudioLimits()


class AudioError(ValueError):
  """This audio cannot be used; the message says why, in one line."""

  def __init__(self, kind: str, message: str):
    super().__init__(message)
    self.kind = kind  # Short, stable: used as the dead-letter reason key.


# The formats the decoder reads, by what their bytes start with.
FORMATS = 'WAV, FLAC, OGG or MP3'
NOT_AUDIO = f'not a {FORMATS} file'
EMPTY_FILE = 'the file is empty (0 bytes)'
NO_SAMPLES = 'the file holds no samples'
NON_FINITE = '{} samples are NaN or Inf'
OUT_OF_RANGE = ('samples reach beyond {} in magnitude: a waveform must lie '
                'within -1..1')
TOO_LONG = ('the recording lasts {} s, longer than the {} s allowed; cut it '
            'into parts')
CHANNELS = '{} channels is outside 1..{}'
SAMPLE_RATE = 'sample rate {} Hz is outside {}..{} Hz'


def seconds_text(seconds: float) -> str:
  """How a length is written in messages: rounded up to a tenth of a second,
  so that a recording a sample too long never reads as exactly the limit
  (the graph's twin: tenths_up_text)."""
  return f'{math.ceil(round(seconds * 10, 6)) / 10:.1f}'


def limit_text(value: float) -> str:
  """How a configured bound is written in messages."""
  return f'{value:g}'


def check_channels(channels: int, limits: AudioLimits = DEFAULT_LIMITS
                   ) -> None:
  if not 1 <= channels <= limits.max_channels:
    raise AudioError('bad_header', CHANNELS.format(channels,
                                                   limits.max_channels))


def check_rate(rate: int, limits: AudioLimits = DEFAULT_LIMITS) -> None:
  if not limits.min_sample_rate_hz <= rate <= limits.max_sample_rate_hz:
    raise AudioError('bad_sample_rate', SAMPLE_RATE.format(
        rate, limits.min_sample_rate_hz, limits.max_sample_rate_hz))


def check_length(frames: int, rate: int, max_seconds: float | None) -> None:
  """Refuses a recording longer than `max_seconds` (None: any length)."""
  if max_seconds is not None and frames > max_seconds * rate:
    raise AudioError('too_long', TOO_LONG.format(
        seconds_text(frames / rate), limit_text(max_seconds)))


def check_declared(frames: int, channels: int, rate: int,
                   max_seconds: float | None,
                   limits: AudioLimits = DEFAULT_LIMITS) -> None:
  """Refuses, before decoding, shapes of audio no recording of ours has."""
  check_channels(channels, limits)
  check_rate(rate, limits)
  check_length(frames, rate, max_seconds)


@dataclasses.dataclass
class SampleCheck:
  """NaN/Inf and magnitudes no waveform in [-1, 1] would have, counted over
  every block of a decode, then judged once (so the count is the file's)."""
  non_finite: int = 0
  peak: float = 0.0

  def add(self, samples: np.ndarray) -> None:
    finite = np.isfinite(samples)
    self.non_finite += int(samples.size - np.count_nonzero(finite))
    if samples.size and self.non_finite == 0:
      self.peak = max(self.peak, float(np.max(np.abs(samples))))

  def raise_if_bad(self, limits: AudioLimits = DEFAULT_LIMITS) -> None:
    if self.non_finite:
      raise AudioError('non_finite', NON_FINITE.format(self.non_finite))
    if self.peak > limits.max_abs_sample:
      raise AudioError('out_of_range', OUT_OF_RANGE.format(
          limit_text(limits.max_abs_sample)))

