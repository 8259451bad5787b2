"""The serving signatures: raw audio in, family out, features in the graph.

Core TensorFlow ops only (TF Serving's standard binary has no tensorflow-io
kernels). The features come from nsynth_contracts.features, the very function
the Beam job ran, and normalisation is the model's own first layer.
"""

from __future__ import annotations

import tensorflow as tf

from nsynth_contracts import features
from nsynth_contracts import manifest as manifest_lib

AUDIO_SIGNATURE = 'serving_default'
WAV_SIGNATURE = 'serving_wav'
AUDIO_INPUT = 'audio'      # float32 [batch, samples], 16 kHz, in [-1, 1]
WAV_INPUT = 'wav'          # string [batch]: WAV file bytes
PROBABILITIES = 'probabilities'
CLASS_ID = 'class_id'
FAMILY = 'family'
CLASSES = 'classes'        # string [B, classes]: the names the columns of
                           # probabilities stand for, as TF's classify API


def make_serving_functions(model, manifest: manifest_lib.Manifest):
  """(serve_audio, serve_wav) tf.functions bound to `model`.

  Both return {probabilities: float32 [B, classes], class_id: int64 [B],
  family: string [B], classes: string [B, classes]}. Bad requests raise
  InvalidArgument with a message.
  """
  params = manifest.feature_params
  families = tf.constant(list(manifest.vocabulary.families))

  def classify(clips):
    mfcc = features.waveform_to_mfcc(clips, params)           # [B, T, C]
    probabilities = model(mfcc, training=False)               # [B, classes]
    class_id = tf.argmax(probabilities, axis=-1)              # [B]
    return {PROBABILITIES: probabilities, CLASS_ID: class_id,
            FAMILY: tf.gather(families, class_id),
            CLASSES: tf.tile(families[tf.newaxis], [tf.shape(class_id)[0], 1])}

  @tf.function(input_signature=[
      tf.TensorSpec([None, None], tf.float32, name=AUDIO_INPUT)])
  def serve_audio(audio):
    # A wrong dtype or rank is refused (InvalidArgument) before this runs:
    # by the signature's dtype and by shape inference on the fed tensor.
    checks = [
        tf.debugging.assert_greater(
            tf.size(audio), 0,
            message='audio is empty: each waveform needs at least one sample'),
        tf.debugging.assert_all_finite(audio, 'audio holds NaN or Inf'),
    ]
    with tf.control_dependencies(checks):
      return classify(tf.identity(audio))

  def decode_one(wav_bytes):
    # decode_wav's own header error quotes the raw bytes, which are not
    # UTF-8 for junk input and reach clients as an unreadable message.
    # Padded so that substr stays in range for files shorter than a header.
    head = tf.strings.join([wav_bytes, b'\0' * 12])
    is_wav = tf.logical_and(
        tf.equal(tf.strings.substr(head, 0, 4), 'RIFF'),
        tf.equal(tf.strings.substr(head, 8, 4), 'WAVE'))
    header_check = tf.debugging.assert_equal(
        is_wav, True, message='not a WAV file (no RIFF/WAVE header)')
    with tf.control_dependencies([header_check]):
      # Core op: PCM WAV only (a float WAV fails with "Expected 1 (PCM)").
      audio, sample_rate = tf.audio.decode_wav(wav_bytes)     # [S, channels]
    checks = [
        tf.debugging.assert_equal(
            sample_rate, params.sample_rate_hz,
            message=f'WAV sample rate must be {params.sample_rate_hz} Hz'),
        tf.debugging.assert_greater(
            tf.shape(audio)[0], 0, message='the WAV holds no samples'),
    ]
    with tf.control_dependencies(checks):
      mono = tf.reduce_mean(audio, axis=1)                    # [S]
    return features.pad_or_trim(mono[tf.newaxis], params)[0]  # [clip]

  @tf.function(input_signature=[
      tf.TensorSpec([None], tf.string, name=WAV_INPUT)])
  def serve_wav(wav):
    clips = tf.map_fn(decode_one, wav, fn_output_signature=tf.TensorSpec(
        [params.clip_samples], tf.float32))                   # [B, clip]
    return classify(clips)

  return serve_audio, serve_wav
