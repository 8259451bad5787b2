"""The serving signatures: raw audio in, family out, features in the graph.

Core TensorFlow ops only (TF Serving's standard binary has no tensorflow-io
kernels). The features come from nsynth_contracts.features, the very function
the Beam job ran, and normalisation is the model's own first layer.

Two for notes (`serving_default` on float audio, `serving_wav` on WAV bytes:
one 4 s clip per row) and two for recordings of any length
(`serving_long_audio`, `serving_long_wav`: one recording per request, cut
into windows and answered per window and as a whole, by the same
nsynth_contracts.windows functions the Beam job and the report use).
"""

import tensorflow as tf

from nsynth_contracts import audio as audio_lib
from nsynth_contracts import features
from nsynth_contracts import manifest as manifest_lib
from nsynth_contracts import windows as windows_lib

AUDIO_SIGNATURE = 'serving_default'
WAV_SIGNATURE = 'serving_wav'
AUDIO_INPUT = 'audio'      # float32 [batch, samples], 16 kHz, in [-1, 1]
WAV_INPUT = 'wav'          # string [batch]: WAV file bytes
PROBABILITIES = 'probabilities'
CLASS_ID = 'class_id'
FAMILY = 'family'
CLASSES = 'classes'        # string [B, classes]: the names the columns of
                           # probabilities stand for, as TF's classify API
LONG_AUDIO_SIGNATURE = 'serving_long_audio'
LONG_WAV_SIGNATURE = 'serving_long_wav'
LONG_AUDIO_INPUT = 'audio'     # float32 [samples]: one recording, 16 kHz
LONG_WAV_INPUT = 'wav'         # string []: one WAV file's bytes
WINDOW_PROBABILITIES = 'window_probabilities'   # [W, classes], sounding ones
WINDOW_START_SECONDS = 'window_start_seconds'   # [W]
SOUNDING_WINDOWS = 'sounding_windows'           # int32 []: W
NO_SOUND = '(no sound)'        # the family of a recording with no sound


def require(value: tf.Tensor, condition: tf.Tensor, message: str) -> tf.Tensor:
  """`value`, passed on only if `condition` holds; else INVALID_ARGUMENT.

  The check is a data dependency: CheckNumerics on a flag that is 0 when the
  condition holds and NaN when it does not, folded into `value`. Checks
  hung on control dependencies were reordered by graph optimisation, so that
  a later op failed first, in TensorFlow's words ("paddings must be the rank
  of inputs") instead of ours.

  Args:
    value: float or string tensor to pass on.
    condition: bool scalar.
    message: what the client reads (no square brackets).
  """
  flag = tf.debugging.check_numerics(
      tf.where(condition, 0.0, float('nan')), message)
  if value.dtype == tf.string:
    keep = tf.strings.length(value) + tf.cast(flag, tf.int32)
    return tf.strings.substr(value, tf.zeros_like(keep), keep)
  return value + tf.cast(flag, value.dtype)


def checked_audio(audio: tf.Tensor) -> tf.Tensor:
  """float32 [batch, samples] as the feature contract wants it, or
  INVALID_ARGUMENT saying what is wrong with the request."""
  max_abs = audio_lib.DEFAULT_LIMITS.max_abs_sample
  audio = require(audio, tf.equal(tf.rank(audio), 2),
                  'audio must be float32 (batch, samples): this request has '
                  'another rank')
  audio.set_shape([None, None])
  audio = require(audio, tf.size(audio) > 0,
                  'audio is empty: each waveform needs at least one sample')
  audio = tf.debugging.assert_all_finite(audio, 'audio holds NaN or Inf')
  return require(
      audio, tf.reduce_max(tf.abs(audio)) <= max_abs,
      f'audio samples must lie within -1..1 (magnitudes up to {max_abs:g} '
      f'are accepted)')


def checked_wav_batch(wav: tf.Tensor) -> tf.Tensor:
  """string [batch] of WAV bytes, or INVALID_ARGUMENT."""
  wav = require(wav, tf.equal(tf.rank(wav), 1),
                'wav must be a string vector (batch) of WAV file bytes: this '
                'request has another rank')
  wav.set_shape([None])
  return require(wav, tf.size(wav) > 0, 'the request holds no WAV files')


def decode_wav(wav_bytes: tf.Tensor, sample_rate_hz: int) -> tf.Tensor:
  """One WAV file's bytes -> float32 [samples], mono, or INVALID_ARGUMENT.

  Core op: 16-bit PCM only (a float WAV fails with "Expected 1 (PCM)").
  """
  # decode_wav's own header error quotes the raw bytes, which are not UTF-8
  # for junk input and reach clients as an unreadable message. Padded so
  # that substr stays in range for files shorter than a header.
  head = tf.strings.join([wav_bytes, b'\0' * 36])
  is_wav = tf.logical_and(
      tf.equal(tf.strings.substr(head, 0, 4), 'RIFF'),
      tf.equal(tf.strings.substr(head, 8, 4), 'WAVE'))
  wav_bytes = require(wav_bytes, is_wav,
                      'not a WAV file (no RIFF/WAVE header)')
  # decode_wav reads only a fmt chunk right after the header, of 16-bit PCM
  # (format 1), and its errors quote the bytes it found instead.
  wav_bytes = require(
      wav_bytes, tf.equal(tf.strings.substr(head, 12, 4), 'fmt '),
      'the WAV must start with its fmt chunk')
  wav_bytes = require(
      wav_bytes, tf.logical_and(
          tf.equal(tf.strings.substr(head, 20, 2), b'\x01\x00'),
          tf.equal(tf.strings.substr(head, 34, 2), b'\x10\x00')),
      'the WAV must be 16-bit PCM (decode other encodings first, or send '
      'float samples to serving_default)')
  audio, sample_rate = tf.audio.decode_wav(wav_bytes)       # [S, channels]
  audio = require(audio, tf.equal(sample_rate, sample_rate_hz),
                  f'WAV sample rate must be {sample_rate_hz} Hz')
  audio = require(audio, tf.shape(audio)[0] > 0, 'the WAV holds no samples')
  return tf.reduce_mean(audio, axis=1)                      # [S]


def checked_recording(audio: tf.Tensor, max_samples: int,
                      sample_rate_hz: int) -> tf.Tensor:
  """float32 [samples] of one recording, or INVALID_ARGUMENT."""
  audio = require(audio, tf.equal(tf.rank(audio), 1),
                  'audio must be float32 (samples) of one recording: this '
                  'request has another rank')
  audio.set_shape([None])
  audio = require(
      audio, tf.size(audio) <= max_samples,
      f'the recording is longer than the {max_samples / sample_rate_hz:g} s '
      f'one request may hold; send it in parts')
  return checked_audio(audio[tf.newaxis])[0]


def make_serving_functions(model, manifest: manifest_lib.Manifest,
                           windows: windows_lib.WindowParams = (
                               windows_lib.DEFAULT_WINDOWS)):
  """{signature name: tf.function} bound to `model`.

  The note signatures return {probabilities: float32 [B, classes], class_id:
  int64 [B], family: string [B], classes: string [B, classes]}. The
  recording signatures return, for the sounding windows, probabilities
  [W, classes] and start times [W], and for the whole recording
  probabilities [classes], class_id and family (-1 and '(no sound)' when
  no window sounds), classes [classes] and the number of sounding windows.
  Bad requests raise InvalidArgument with a message.
  """
  params = manifest.feature_params
  families = tf.constant(list(manifest.vocabulary.families))

  def classify(clips):
    mfcc = features.waveform_to_mfcc(clips, params)           # [B, T, C]
    probabilities = model(mfcc, training=False)               # [B, classes]
    # The last guard: an answer is finite, or the request is refused.
    probabilities = tf.debugging.assert_all_finite(
        probabilities, 'the model\'s output for this audio is not finite')
    class_id = tf.argmax(probabilities, axis=-1)              # [B]
    return {PROBABILITIES: probabilities, CLASS_ID: class_id,
            FAMILY: tf.gather(families, class_id),
            CLASSES: tf.tile(families[tf.newaxis], [tf.shape(class_id)[0], 1])}

  # The inputs are declared of unknown rank and checked at run time: TF
  # Serving feeds a tensor without checking it against the signature, and
  # with a declared rank the checks would be folded away as always true.
  @tf.function(input_signature=[
      tf.TensorSpec(None, tf.float32, name=AUDIO_INPUT)])
  def serve_audio(audio):
    return classify(checked_audio(audio))

  def decode_one(wav_bytes):
    mono = decode_wav(wav_bytes, params.sample_rate_hz)       # [S]
    return features.pad_or_trim(mono[tf.newaxis], params)[0]  # [clip]

  @tf.function(input_signature=[
      tf.TensorSpec(None, tf.string, name=WAV_INPUT)])
  def serve_wav(wav):
    clips = tf.map_fn(decode_one, checked_wav_batch(wav),
                      fn_output_signature=tf.TensorSpec(
                          [params.clip_samples], tf.float32))  # [B, clip]
    return classify(clips)

  max_samples = windows.max_samples(params)

  def classify_recording(recording):
    framed, starts, sounding = windows_lib.frame_windows(recording, params,
                                                         windows)
    clips = tf.boolean_mask(framed, sounding)                 # [W, clip]
    starts = tf.boolean_mask(starts, sounding)                # [W]
    heard = tf.size(starts) > 0
    num_classes = len(manifest.vocabulary.families)
    # The model never runs on an empty batch (its convolutions refuse one).
    window_probabilities = tf.cond(
        heard, lambda: classify(clips)[PROBABILITIES],
        lambda: tf.zeros([0, num_classes]))                   # [W, classes]
    probabilities = tf.cond(
        heard, lambda: windows_lib.aggregate(window_probabilities),
        lambda: tf.zeros([num_classes]))                      # [classes]
    class_id = tf.where(heard, tf.argmax(probabilities),
                        tf.constant(-1, tf.int64))
    return {
        WINDOW_PROBABILITIES: window_probabilities,
        WINDOW_START_SECONDS: starts,
        SOUNDING_WINDOWS: tf.size(starts),
        PROBABILITIES: probabilities,
        CLASS_ID: class_id,
        FAMILY: tf.where(heard, tf.gather(families, tf.maximum(class_id, 0)),
                         NO_SOUND),
        CLASSES: families,
    }

  @tf.function(input_signature=[
      tf.TensorSpec(None, tf.float32, name=LONG_AUDIO_INPUT)])
  def serve_long_audio(audio):
    return classify_recording(checked_recording(audio, max_samples,
                                                params.sample_rate_hz))

  @tf.function(input_signature=[
      tf.TensorSpec(None, tf.string, name=LONG_WAV_INPUT)])
  def serve_long_wav(wav):
    wav = require(wav, tf.equal(tf.rank(wav), 0),
                  'wav must be one WAV file\'s bytes (a string scalar): this '
                  'request has another rank')
    wav.set_shape([])
    mono = decode_wav(wav, params.sample_rate_hz)
    return classify_recording(checked_recording(mono, max_samples,
                                                params.sample_rate_hz))

  return {AUDIO_SIGNATURE: serve_audio, WAV_SIGNATURE: serve_wav,
          LONG_AUDIO_SIGNATURE: serve_long_audio,
          LONG_WAV_SIGNATURE: serve_long_wav}
