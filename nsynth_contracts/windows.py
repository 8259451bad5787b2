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
  sound_frame_samples whose level (RMS about the frame's mean) is at or
  above silence_threshold_dbfs, or a shorter sound above it that repeats as
  a pitch does (repetition), which a click does not (see window_params).
  window_params.sounding_numpy is its twin for NumPy (tested equal)."""
  size = windows.sound_frame_samples
  framed = tf.signal.frame(clips, size, size, pad_end=True)   # [B, F, size]
  centred = framed - tf.reduce_mean(framed, axis=2, keepdims=True)
  level = tf.sqrt(tf.reduce_mean(tf.square(centred), axis=2))  # [B, F]
  dbfs = 20.0 * tf.math.log(tf.maximum(level, 1e-10)) / tf.math.log(10.0)
  loud = dbfs >= windows.silence_threshold_dbfs
  # Every run of min_sound_frames frames; none when the clip is shorter.
  runs = tf.signal.frame(tf.cast(loud, tf.float32), windows.min_sound_frames,
                         1, axis=1)
  sustained = tf.reduce_any(tf.reduce_min(runs, axis=2) > 0.0, axis=1)
  # Two frames at a time, where one is loud, in clips that hold no
  # sustained sound: does the short sound repeat?
  candidates = tf.logical_and(
      tf.logical_or(loud[:, :-1], loud[:, 1:]),
      tf.logical_not(sustained)[:, tf.newaxis])                 # [B, F - 1]
  where = tf.where(candidates)                                  # [K, 2]
  pairs = tf.concat([tf.gather_nd(framed, where),
                     tf.gather_nd(framed, where + [0, 1])], axis=1)
  repeats = repetition(pairs, windows) >= windows.min_repetition  # [K]
  short = tf.math.unsorted_segment_max(
      tf.cast(repeats, tf.int32), where[:, 0], tf.shape(clips)[0]) > 0
  return tf.logical_or(sustained, short)


def repetition(stretches: tf.Tensor, windows: WindowParams = DEFAULT_WINDOWS
               ) -> tf.Tensor:
  """float32 [K]: how well each stretch (float32 [K, samples]) repeats: the
  highest normalised correlation of its sample-to-sample changes with
  themselves at a lag of min_repeat_lag_samples to max_repeat_lag_samples,
  counted only where each side holds a quarter of the energy (else 0)."""
  changes = stretches[:, 1:] - stretches[:, :-1]               # [K, N]
  n = int(stretches.shape[1]) - 1
  fft_length = 1 << (2 * n - 1).bit_length()
  # Padded here: RFFT refuses an fft_length past an empty batch's length.
  spectrum = tf.signal.rfft(tf.pad(changes, [[0, 0], [0, fft_length - n]]))
  correlation = tf.signal.irfft(tf.cast(tf.square(tf.abs(spectrum)),
                                        tf.complex64),
                                [fft_length])[:, :n]            # [K, N] lags
  energy = tf.cumsum(tf.square(changes), axis=1)
  low = windows.min_repeat_lag_samples
  high = min(windows.max_repeat_lag_samples, n - 1)
  total = energy[:, -1:]
  head = tf.reverse(energy[:, n - 1 - high:n - low], [1])       # n - lag
  tail = total - energy[:, low - 1:high]                        # n - lag
  enough = (head >= 0.25 * total) & (tail >= 0.25 * total) & (total > 0)
  ratio = correlation[:, low:high + 1] / tf.sqrt(tf.maximum(head * tail,
                                                            1e-30))
  counted = tf.where(enough, ratio, tf.zeros_like(ratio))
  # A zero beside them: 0 where no lag is counted, or none fits.
  return tf.reduce_max(tf.pad(counted, [[0, 0], [0, 1]]), axis=1)


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
