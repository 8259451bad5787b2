"""How recordings are cut into windows, and what counts as no sound.

The NumPy half of the windows contract (as feature_params is of the
features): the parameters, the one judgement of silence of notes and
windows, and the silence test for decoded clips, without TensorFlow, so
that the Beam job's launcher and the decoding stage need no TensorFlow to
use them.
`nsynth_contracts.windows` holds the TensorFlow functions.
"""

import dataclasses
import math

import numpy as np

from nsynth_contracts import feature_params

# What holds sound, as a listener judges it, for notes and windows alike: a
# clip holds sound when its short frames stay at or above the floor for long
# enough to be a note, or when a shorter sound above it is a note, not a
# click. Never the RMS over the whole clip: a soft piano note decays within a
# second and its 4 s RMS falls below any floor that refuses silence, while
# one click in 4 s of silence lifts it above. Chosen on the demo's quietest
# notes and on synthetic clicks (BUILD_NOTES.md, "Silence as a listener
# hears it").
#
# A frame's level is its RMS about its own mean (its standard deviation): a
# constant offset (DC, an 8-bit file's silence at 0x7F) is no sound, and
# what changes slower than a frame counts for little. That is a high-pass
# whose -3 dB point is the lowest pitch an instrument plays (A0, 27.5 Hz);
# 10 Hz counts 11 dB less, 1 Hz 31 dB less.
SILENCE_THRESHOLD_DBFS = -60.0   # a frame's level below this is silent
SOUND_FRAME_SAMPLES = 256        # 16 ms at 16 kHz
# 48 ms in a row: a click lasts one or two frames, the shortest demo note
# that sounds (a soft, staccato piano sample) five.
MIN_SOUND_FRAMES = 3
# A shorter sound is a note when its waveform repeats, as a pitch does: the
# normalised correlation of its sample-to-sample changes with themselves,
# some 2 to 8 ms later, reaches MIN_REPETITION. A click does not repeat (an
# impulse, a step, a burst of noise reach 0.0 to 0.4; a ringing click 0.3);
# the top notes of a piano, 2 to 4 kHz, decaying within 32 ms, reach 0.9 and
# more. Measured over two frames (BUILD_NOTES.md, "Silence as a listener
# hears it").
REPEAT_LAG_SAMPLES = (32, 128)   # 2-8 ms at 16 kHz: pitches above 125 Hz,
                                 # or their repeats
MIN_REPETITION = 0.6
NO_SOUND = '(no sound)'   # the family of a clip or recording without sound


@dataclasses.dataclass(frozen=True)
class WindowParams:
  """How a recording is cut; the window itself is one feature clip."""
  hop_seconds: float = 2.0
  silence_threshold_dbfs: float = SILENCE_THRESHOLD_DBFS  # frame level floor
  sound_frame_samples: int = SOUND_FRAME_SAMPLES
  min_sound_frames: int = MIN_SOUND_FRAMES
  min_repeat_lag_samples: int = REPEAT_LAG_SAMPLES[0]
  max_repeat_lag_samples: int = REPEAT_LAG_SAMPLES[1]
  min_repetition: float = MIN_REPETITION
  max_seconds: float = 600.0              # longer requests are refused

  def hop_samples(self, params: feature_params.FeatureParams) -> int:
    return int(round(self.hop_seconds * params.sample_rate_hz))

  def num_windows(self, samples: int,
                  params: feature_params.FeatureParams) -> int:
    """How many windows a recording of `samples` is cut into
    (windows.frame_windows's W)."""
    hop = self.hop_samples(params)
    return 1 + max(0, -(-(samples - params.clip_samples) // hop))

  def max_windows(self, params: feature_params.FeatureParams) -> int:
    """The most windows a recording of max_seconds is cut into."""
    hops = (self.max_seconds - params.clip_seconds) / self.hop_seconds
    return 1 + math.ceil(max(hops, 0.0))


DEFAULT_WINDOWS = WindowParams()


def sounding_numpy(clips: np.ndarray,
                   windows: WindowParams = DEFAULT_WINDOWS) -> np.ndarray:
  """bool [B]: windows.sounding for float32 clips [B, samples] in NumPy."""
  clips = np.asarray(clips, np.float32)
  size = windows.sound_frame_samples
  frames = -(-clips.shape[1] // size)
  padded = np.zeros((clips.shape[0], frames * size), np.float32)
  padded[:, :clips.shape[1]] = clips
  framed = padded.reshape(clips.shape[0], frames, size)        # [B, F, size]
  centred = framed - framed.mean(axis=2, keepdims=True, dtype=np.float32)
  level = np.sqrt(np.mean(np.square(centred), axis=2, dtype=np.float32))
  dbfs = 20.0 * np.log10(np.maximum(level, np.float32(1e-10)))
  loud = dbfs >= windows.silence_threshold_dbfs                 # [B, F]
  run = windows.min_sound_frames
  sustained = np.zeros(clips.shape[0], bool) if frames < run else (
      np.lib.stride_tricks.sliding_window_view(loud, run, axis=1)
      .all(axis=2).any(axis=1))
  # Two frames at a time, where one is loud, in clips that hold no sustained
  # sound: does the short sound repeat?
  candidates = (loud[:, :-1] | loud[:, 1:]) & ~sustained[:, np.newaxis]
  clip_of, frame_of = np.nonzero(candidates)
  pairs = np.concatenate([framed[clip_of, frame_of],
                          framed[clip_of, frame_of + 1]], axis=1)  # [K, 2 size]
  repeats = _repetition_numpy(pairs, windows) >= windows.min_repetition
  short = np.zeros(clips.shape[0], bool)
  short[clip_of[repeats]] = True
  return sustained | short


def _repetition_numpy(pairs: np.ndarray, windows: WindowParams
                      ) -> np.ndarray:
  """float32 [K]: how well each stretch (float32 [K, samples]) repeats: the
  highest normalised correlation of its sample-to-sample changes with
  themselves at a lag in the window's range, counted only where each side
  holds a quarter of the energy (else 0). windows.repetition's twin."""
  changes = np.diff(pairs, axis=1).astype(np.float32)          # [K, N]
  n = changes.shape[1]
  fft_length = 1 << (2 * n - 1).bit_length()
  spectrum = np.fft.rfft(changes, fft_length, axis=1)
  correlation = np.fft.irfft(np.square(np.abs(spectrum)), fft_length,
                             axis=1)[:, :n].astype(np.float32)  # [K, N] lags
  energy = np.cumsum(np.square(changes), axis=1, dtype=np.float32)
  lags = np.arange(windows.min_repeat_lag_samples,
                   min(windows.max_repeat_lag_samples, n - 1) + 1)
  total = energy[:, -1:]
  head = energy[:, n - 1 - lags]                 # the first n - lag samples
  tail = total - energy[:, lags - 1]             # the last n - lag samples
  enough = (head >= 0.25 * total) & (tail >= 0.25 * total) & (total > 0)
  ratio = correlation[:, lags] / np.sqrt(np.maximum(head * tail,
                                                    np.float32(1e-30)))
  return np.where(enough, ratio, 0.0).max(axis=1, initial=0.0)
