"""Recordings of any length as 4-second windows, and one answer from many.

The model hears 4 s at a time, as NSynth's notes last. A recording is cut
into windows of that length every `hop_seconds` (default 2 s, so each moment
is heard twice); the last window is padded with silence as a short note is
(features.pad_or_trim). Windows without a sound (`sounding`) are
skipped: they hold no instrument to name. A note is one window, and the
serving signatures answer a note that quiet as they answer a recording with
no sounding window: NO_SOUND, class -1, no probabilities.

The Beam job (long recordings), the serving signatures for long audio, the
CLI and the phrase report all call these functions, so they cut and
aggregate alike. Core TensorFlow ops only (the serving graph holds them).
"""

import tensorflow as tf

from nsynth_contracts import feature_params
from nsynth_contracts.window_params import DEFAULT_WINDOWS
from nsynth_contracts.window_params import WindowParams


def frame_windows(
    waveform: tf.Tensor,
    params: feature_params.FeatureParams = feature_params.DEFAULT_PARAMS,
    windows: WindowParams = DEFAULT_WINDOWS
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
  """Cuts one recording into windows of one clip each.

  Args:
    waveform: float32 [samples] at params.sample_rate_hz, in [-1, 1].

  Returns:
    windows: float32 [W, clip_samples], every window (silent ones too);
    start_seconds: float32 [W], where each window starts;
    sounding: bool [W], False for windows below the silence threshold.
    W = 1 for a recording no longer than one clip; otherwise one window
    every hop, the last one reaching the end (padded with silence).
  """
  waveform = tf.convert_to_tensor(waveform, tf.float32)       # [S]
  clip = params.clip_samples
  hop = windows.hop_samples(params)
  length = tf.shape(waveform)[0]
  count = 1 + tf.maximum(0, (length - clip + hop - 1) // hop)  # W
  padded = tf.pad(waveform, [[0, (count - 1) * hop + clip - length]])
  framed = tf.signal.frame(padded, clip, hop)                 # [W, clip]
  # In float64: float32 division by the rate gave 6.0000005 for 6 s.
  starts = tf.cast(tf.cast(tf.range(count) * hop, tf.float64) /
                   params.sample_rate_hz, tf.float32)
  return framed, starts, sounding(framed, windows)


def sounding(clips: tf.Tensor, windows: WindowParams = DEFAULT_WINDOWS
             ) -> tf.Tensor:
  """bool [B]: whether each clip (float32 [B, samples], a window or a padded
  note) holds a sound to name: min_sound_frames consecutive frames of
  sound_frame_samples whose RMS is at or above silence_threshold_dbfs (see
  window_params). window_params.sounding_numpy is its twin for NumPy
  (tested equal)."""
  size = windows.sound_frame_samples
  framed = tf.signal.frame(clips, size, size, pad_end=True)   # [B, F, size]
  rms = tf.sqrt(tf.reduce_mean(tf.square(framed), axis=2))   # [B, F]
  dbfs = 20.0 * tf.math.log(tf.maximum(rms, 1e-10)) / tf.math.log(10.0)
  loud = tf.cast(dbfs >= windows.silence_threshold_dbfs, tf.float32)
  # Every run of min_sound_frames frames; none when the clip is shorter.
  runs = tf.signal.frame(loud, windows.min_sound_frames, 1, axis=1)
  return tf.reduce_any(tf.reduce_min(runs, axis=2) > 0.0, axis=1)


def aggregate(window_probabilities: tf.Tensor) -> tf.Tensor:
  """One clip-level distribution from its windows' probabilities.

  The mean of log-probabilities (a normalised geometric mean): a window
  sure that a family is wrong vetoes it, and one confident window cannot
  outvote the rest. Chosen by measurement against the arithmetic mean and a
  confidence-weighted mean (BUILD_NOTES.md, "Long recordings").

  Args:
    window_probabilities: float32 [W, classes], W >= 1.

  Returns:
    float32 [classes], summing to 1.
  """
  log_p = tf.math.log(tf.maximum(window_probabilities, 1e-7))
  return tf.nn.softmax(tf.reduce_mean(log_p, axis=0))
