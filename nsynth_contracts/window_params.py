"""How recordings are cut into windows, and what counts as no sound.

The NumPy half of the windows contract (as feature_params is of the
features): the parameters, the one silence threshold of notes and windows,
and the silence test for decoded clips, without TensorFlow, so that the Beam
job's launcher and the decoding stage need no TensorFlow to use them.
`nsynth_contracts.windows` holds the TensorFlow functions.
"""

import dataclasses
import math

import numpy as np

from nsynth_contracts import feature_params

# A clip whose RMS is below this holds no sound to name: the one threshold
# of windows and notes alike.
SILENCE_THRESHOLD_DBFS = -60.0
NO_SOUND = '(no sound)'   # the family of a clip or recording without sound


@dataclasses.dataclass(frozen=True)
class WindowParams:
  """How a recording is cut; the window itself is one feature clip."""
  hop_seconds: float = 2.0
  silence_threshold_dbfs: float = SILENCE_THRESHOLD_DBFS  # RMS below: silent
  max_seconds: float = 600.0              # longer requests are refused

  def hop_samples(self, params: feature_params.FeatureParams) -> int:
    return int(round(self.hop_seconds * params.sample_rate_hz))

  def max_windows(self, params: feature_params.FeatureParams) -> int:
    """The most windows a recording of max_seconds is cut into."""
    hops = (self.max_seconds - params.clip_seconds) / self.hop_seconds
    return 1 + math.ceil(max(hops, 0.0))


DEFAULT_WINDOWS = WindowParams()


def sounding_numpy(clips: np.ndarray,
                   windows: WindowParams = DEFAULT_WINDOWS) -> np.ndarray:
  """bool [B]: windows.sounding for float32 clips [B, samples] in NumPy."""
  clips = np.asarray(clips, np.float32)
  rms = np.sqrt(np.mean(np.square(clips), axis=1, dtype=np.float32))
  dbfs = 20.0 * np.log10(np.maximum(rms, np.float32(1e-10)))
  return dbfs >= windows.silence_threshold_dbfs
