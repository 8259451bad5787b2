"""The MFCC feature contract: waveform in, librosa-equivalent MFCCs out.

One pure-TensorFlow function, `waveform_to_mfcc`, is the only place features
are computed. The Beam job calls it on batches of decoded notes, the trainer
never recomputes features, and the exported SavedModel calls it inside its
serving signature, so training and serving cannot disagree.

Only core TensorFlow ops are used (TF Serving's standard binary has no
tensorflow-io kernels). The defaults reproduce
`librosa.feature.mfcc(y, sr=16000, n_mfcc=128)` with librosa >= 0.10 defaults,
and `FeatureParams(num_mfcc=20)` librosa's default n_mfcc, the seed
recipe's (trainer.models.seed_cnn).
"""

import functools

import tensorflow as tf

# The NumPy half, re-exported: `features.FeatureParams` etc. stay valid.
from nsynth_contracts.feature_params import DEFAULT_PARAMS
from nsynth_contracts.feature_params import FeatureParams
from nsynth_contracts.feature_params import dct_ii_ortho_matrix
from nsynth_contracts.feature_params import mel_band_groups
from nsynth_contracts.feature_params import pad_or_trim_numpy  # noqa: F401
from nsynth_contracts.feature_params import slaney_mel_matrix  # noqa: F401


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


def waveform_to_mfcc(waveforms: tf.Tensor,
                     params: FeatureParams = DEFAULT_PARAMS) -> tf.Tensor:
  """MFCCs of a batch of clips, equal to librosa.feature.mfcc (transposed).

  Args:
    waveforms: float32 [batch, samples] in [-1, 1] at params.sample_rate_hz.
      Any length: clips are padded or trimmed to params.clip_seconds first.
    params: feature parameters.

  Returns:
    float32 [batch, num_frames, num_mfcc]; for 4 s at 16 kHz, [batch, 126, 128].
  """
  clips = pad_or_trim(waveforms, params)                        # [B, S]
  mel_power = mel_power_spectrogram(clips, params)              # [B, T, M]
  log_mel = 10.0 * tf.math.log(
      tf.maximum(mel_power, params.log_floor_power)) / tf.math.log(10.0)
  # top_db is relative to each clip's own loudest bin, as librosa per call.
  loudest = tf.reduce_max(log_mel, axis=[1, 2], keepdims=True)  # [B, 1, 1]
  log_mel = tf.maximum(log_mel, loudest - params.top_db)        # [B, T, M]
  dct = tf.constant(dct_ii_ortho_matrix(params.num_mel_bands, params.num_mfcc))
  return tf.tensordot(log_mel, dct, axes=1)                     # [B, T, C]


def mel_power_spectrogram(clips: tf.Tensor,
                          params: FeatureParams = DEFAULT_PARAMS) -> tf.Tensor:
  """librosa.feature.melspectrogram's power mel spectrogram, transposed.

  The step the MFCCs share with any representation whose network hears a
  mel spectrogram, with librosa >= 0.10 defaults: centred frames, zero padding,
  periodic Hann window, power 2, Slaney mel bands with area normalisation.

  Args:
    clips: float32 [batch, samples], already padded or trimmed.
    params: fft_length_samples, hop_length_samples, num_mel_bands,
      sample_rate_hz and the mel range are used.

  Returns:
    float32 [batch, 1 + samples // hop_length_samples, num_mel_bands].
  """
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
  return tf.concat([                                            # [B, T, M]
      tf.tensordot(power[:, :, group.first_bin:group.end_bin],
                   tf.constant(group.weights), axes=1)
      for group in mel_band_groups(params)], axis=2)
