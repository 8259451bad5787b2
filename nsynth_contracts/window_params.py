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
# enough to be a note. Never the RMS over the whole clip: a soft piano note
# decays within a second and its 4 s RMS falls below any floor that refuses
# silence, while one click in 4 s of silence lifts it above. Chosen on the
# demo's quietest notes and on synthetic clicks (BUILD_NOTES.md, "Silence as
# a listener hears it").
SILENCE_THRESHOLD_DBFS = -60.0   # a frame's RMS below this is silent
SOUND_FRAME_SAMPLES = 256        # 16 ms at 16 kHz
# 48 ms in a row: a click lasts one or two frames, the shortest demo note
# that sounds (a soft, staccato piano sample) five.
MIN_SOUND_FRAMES = 3
NO_SOUND = '(no sound)'   # the family of a clip or recording without sound


@dataclasses.dataclass(frozen=True)
class WindowParams:
  """How a recording is cut; the window itself is one feature clip."""
  hop_seconds: float = 2.0
  silence_threshold_dbfs: float = SILENCE_THRESHOLD_DBFS  # frame RMS floor
  sound_frame_samples: int = SOUND_FRAME_SAMPLES
  min_sound_frames: int = MIN_SOUND_FRAMES
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
  size, run = windows.sound_frame_samples, windows.min_sound_frames
  frames = -(-clips.shape[1] // size)
  padded = np.zeros((clips.shape[0], frames * size), np.float32)
  padded[:, :clips.shape[1]] = clips
  framed = padded.reshape(clips.shape[0], frames, size)
  rms = np.sqrt(np.mean(np.square(framed), axis=2, dtype=np.float32))
  dbfs = 20.0 * np.log10(np.maximum(rms, np.float32(1e-10)))
  loud = dbfs >= windows.silence_threshold_dbfs                 # [B, F]
  if frames < run:
    return np.zeros(clips.shape[0], bool)
  runs = np.lib.stride_tricks.sliding_window_view(loud, run, axis=1)
  return runs.all(axis=2).any(axis=1)
