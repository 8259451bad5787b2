"""The serving signatures: raw audio in, family out, features in the graph.

Core TensorFlow ops only (TF Serving's standard binary has no tensorflow-io
kernels). The features come from nsynth_contracts.features, the very function
the Beam job ran, and normalisation is the model's own first layer.

Two for notes (`serving_default` on float audio, `serving_wav` on WAV bytes:
one 4 s clip per row), two for recordings of any length
(`serving_long_audio`, `serving_long_wav`: one recording per request, cut
into windows and answered per window and as a whole, by the same
nsynth_contracts.windows functions the Beam job and the report use), and
`serving_contract`, which answers the export's own contract
(nsynth_contracts.serving_contract): how audio must be prepared for the
others. Every signature is built from that one contract.

When the model reads a pretrained representation, each of the four audio
signatures has a twin named with BFLOAT16_SUFFIX (`serving_default_bfloat16`,
...) whose network multiplies in bfloat16 where its kind allows
(nsynth_contracts.precision): faster on a CPU with AVX-512 BF16 or AMX,
within a stated tolerance of the float32 answers, and an error on any other
CPU, where the float32 signatures are the ones to call.
"""

import tensorflow as tf

from nsynth_contracts import audio_limits
from nsynth_contracts import feature_params
from nsynth_contracts import features
from nsynth_contracts import manifest as manifest_lib
from nsynth_contracts import serving_contract
from nsynth_contracts import window_params
from nsynth_contracts import windows as windows_lib
from nsynth_contracts.clip_features import ClipFeatures
from serving import wav_graph
from serving.graph_checks import fill
from serving.graph_checks import require
from serving.graph_checks import seconds_text

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
# The contract as a signature, not an asset file: TF Serving serves
# signatures only (assets.extra never leaves the server, and its model
# metadata API gives signatures' shapes, not values), so a remote client
# reads it through Predict like any answer. TF Serving's REST API refuses a
# signature without inputs, hence the one input, which names the format.
CONTRACT_SIGNATURE = 'serving_contract'
CONTRACT_INPUT = 'format'      # string []: CONTRACT_FORMAT
CONTRACT_FORMAT = 'json'
CONTRACT = 'contract'          # string []: ServingContract.to_json()
BFLOAT16_SUFFIX = '_bfloat16'
AUDIO_SIGNATURES = (AUDIO_SIGNATURE, WAV_SIGNATURE, LONG_AUDIO_SIGNATURE,
                    LONG_WAV_SIGNATURE)


def in_precision(signature: str, precision: str) -> str:
  """The name of `signature`'s twin that computes in `precision` (a
  resolved nsynth_contracts.precision choice)."""
  return signature + (BFLOAT16_SUFFIX if precision == 'bfloat16' else '')


def checked_audio(audio: tf.Tensor) -> tf.Tensor:
  """float32 [batch, samples] as the feature contract wants it, or
  INVALID_ARGUMENT saying what is wrong with the request."""
  limits = audio_limits.DEFAULT_LIMITS
  audio = require(audio, tf.equal(tf.rank(audio), 2),
                  'audio must be float32 (batch, samples): this request has '
                  'another rank')
  audio.set_shape([None, None])
  audio = require(audio, tf.size(audio) > 0,
                  'audio is empty: each waveform needs at least one sample')
  non_finite = tf.reduce_sum(tf.cast(~tf.math.is_finite(audio), tf.int64))
  audio = require(audio, tf.equal(non_finite, 0), lambda: fill(
      audio_limits.NON_FINITE, non_finite))
  return require(
      audio, tf.reduce_max(tf.abs(audio)) <= limits.max_abs_sample,
      audio_limits.OUT_OF_RANGE.format(
          audio_limits.limit_text(limits.max_abs_sample)))


def checked_wav_batch(wav: tf.Tensor) -> tf.Tensor:
  """string [batch] of WAV bytes, or INVALID_ARGUMENT."""
  wav = require(wav, tf.equal(tf.rank(wav), 1),
                'wav must be a string vector (batch) of WAV file bytes: this '
                'request has another rank')
  wav.set_shape([None])
  return require(wav, tf.size(wav) > 0, 'the request holds no WAV files')


def checked_recording(audio: tf.Tensor, max_seconds: float,
                      sample_rate_hz: int) -> tf.Tensor:
  """float32 [samples] of one recording, or INVALID_ARGUMENT."""
  audio = require(audio, tf.equal(tf.rank(audio), 1),
                  'audio must be float32 (samples) of one recording: this '
                  'request has another rank')
  audio.set_shape([None])
  samples = tf.cast(tf.size(audio), tf.float64)
  audio = require(
      audio, samples <= max_seconds * sample_rate_hz, lambda: fill(
          audio_limits.TOO_LONG, seconds_text(samples / sample_rate_hz),
          audio_limits.limit_text(max_seconds)))
  return checked_audio(audio[tf.newaxis])[0]


def contract_for(manifest: manifest_lib.Manifest,
                 windows: window_params.WindowParams = (
                     window_params.DEFAULT_WINDOWS)
                 ) -> serving_contract.ServingContract:
  """The contract of an export of a model trained on `manifest`'s data."""
  return serving_contract.ServingContract(
      feature_params=manifest.feature_params, windows=windows,
      vocabulary=manifest.vocabulary, wav_encodings=wav_graph.ENCODINGS)


def read_contract(loaded, where: str) -> serving_contract.ServingContract:
  """The contract a loaded export (tf.saved_model.load) answers.

  Raises:
    serving_contract.ContractError: the export has no contract signature
      (it predates them) or answers no readable contract; `where` names it.
  """
  if CONTRACT_SIGNATURE not in loaded.signatures:
    raise serving_contract.ContractError(
        f'{where} has no {CONTRACT_SIGNATURE} signature, so how to prepare '
        f'audio for it is unknown: export the model again with nsynth-export')
  answer = loaded.signatures[CONTRACT_SIGNATURE](
      **{CONTRACT_INPUT: tf.constant(CONTRACT_FORMAT)})
  return serving_contract.ServingContract.from_json(
      answer[CONTRACT].numpy(), where)


class _Answers:
  """The model's answers to clips and recordings, as the signatures return
  them; a clip or recording below the silence threshold (windows.sounding)
  gets family window_params.NO_SOUND, class_id -1 and probabilities of
  zero."""

  def __init__(self, model, contract: serving_contract.ServingContract,
               features_of: ClipFeatures):
    self._model = model
    self._features_of = features_of
    self._params = contract.feature_params
    self._windows = contract.windows
    self._families = tf.constant(list(contract.vocabulary.families))
    self._num_classes = contract.vocabulary.num_classes

  def probabilities(self, clips: tf.Tensor) -> tf.Tensor:
    """float32 [B, classes] of clips [B, clip]."""
    inputs = self._features_of(clips)    # mfcc [B, T, C], representations
    probabilities = self._model(inputs, training=False)       # [B, classes]
    # The last guard: an answer is finite, or the request is refused.
    return require(probabilities,
                   tf.reduce_all(tf.math.is_finite(probabilities)),
                   'the model\'s output for this audio is not finite')

  def _family(self, heard: tf.Tensor, class_id: tf.Tensor) -> tf.Tensor:
    return tf.where(heard, tf.gather(self._families, tf.maximum(class_id, 0)),
                    window_params.NO_SOUND)

  def notes(self, clips: tf.Tensor) -> dict[str, tf.Tensor]:
    """The note signatures' outputs for clips [B, clip]."""
    heard = windows_lib.sounding(clips, self._windows)        # [B]
    probabilities = tf.where(heard[:, tf.newaxis],
                             self.probabilities(clips), 0.0)
    class_id = tf.where(heard, tf.argmax(probabilities, axis=-1),
                        tf.constant(-1, tf.int64))            # [B]
    return {PROBABILITIES: probabilities, CLASS_ID: class_id,
            FAMILY: self._family(heard, class_id),
            CLASSES: tf.tile(self._families[tf.newaxis],
                             [tf.shape(class_id)[0], 1])}

  def recording(self, recording: tf.Tensor) -> dict[str, tf.Tensor]:
    """The recording signatures' outputs for samples [S]: per sounding
    window and for the whole."""
    framed, starts, sounding = windows_lib.frame_windows(
        recording, self._params, self._windows)
    clips = tf.boolean_mask(framed, sounding)                 # [W, clip]
    starts = tf.boolean_mask(starts, sounding)                # [W]
    heard = tf.size(starts) > 0
    # The model never runs on an empty batch (its convolutions refuse one).
    window_probabilities = tf.cond(
        heard, lambda: self.probabilities(clips),
        lambda: tf.zeros([0, self._num_classes]))             # [W, classes]
    probabilities = tf.cond(
        heard, lambda: windows_lib.aggregate(window_probabilities),
        lambda: tf.zeros([self._num_classes]))                # [classes]
    class_id = tf.where(heard, tf.argmax(probabilities),
                        tf.constant(-1, tf.int64))
    return {
        WINDOW_PROBABILITIES: window_probabilities,
        WINDOW_START_SECONDS: starts,
        SOUNDING_WINDOWS: tf.size(starts),
        PROBABILITIES: probabilities,
        CLASS_ID: class_id,
        FAMILY: self._family(heard, class_id),
        CLASSES: self._families,
    }


# The inputs are declared of unknown rank and checked at run time: TF
# Serving feeds a tensor without checking it against the signature, and
# with a declared rank the checks would be folded away as always true.

def _note_functions(answers: _Answers,
                    params: feature_params.FeatureParams) -> dict:
  """serving_default (float clips) and serving_wav (WAV files' bytes)."""
  @tf.function(input_signature=[
      tf.TensorSpec(None, tf.float32, name=AUDIO_INPUT)])
  def serve_audio(audio):
    return answers.notes(features.pad_or_trim(checked_audio(audio), params))

  def decode_one(wav_bytes):
    mono = wav_graph.decode(wav_bytes, params.sample_rate_hz, WAV_SIGNATURE,
                            AUDIO_SIGNATURE)                  # [S]
    return features.pad_or_trim(mono[tf.newaxis], params)[0]  # [clip]

  @tf.function(input_signature=[
      tf.TensorSpec(None, tf.string, name=WAV_INPUT)])
  def serve_wav(wav):
    clips = tf.map_fn(decode_one, checked_wav_batch(wav),
                      fn_output_signature=tf.TensorSpec(
                          [params.clip_samples], tf.float32))  # [B, clip]
    return answers.notes(clips)

  return {AUDIO_SIGNATURE: serve_audio, WAV_SIGNATURE: serve_wav}


def _recording_functions(answers: _Answers,
                         contract: serving_contract.ServingContract) -> dict:
  """serving_long_audio (float samples) and serving_long_wav (a WAV
  file's bytes), one recording each."""
  rate = contract.feature_params.sample_rate_hz
  max_seconds = contract.windows.max_seconds

  @tf.function(input_signature=[
      tf.TensorSpec(None, tf.float32, name=LONG_AUDIO_INPUT)])
  def serve_long_audio(audio):
    return answers.recording(checked_recording(audio, max_seconds, rate))

  @tf.function(input_signature=[
      tf.TensorSpec(None, tf.string, name=LONG_WAV_INPUT)])
  def serve_long_wav(wav):
    wav = require(wav, tf.equal(tf.rank(wav), 0),
                  'wav must be one WAV file\'s bytes (a string scalar): this '
                  'request has another rank')
    wav.set_shape([])
    mono = wav_graph.decode(wav, rate, LONG_WAV_SIGNATURE,
                            LONG_AUDIO_SIGNATURE, max_seconds)
    return answers.recording(checked_recording(mono, max_seconds, rate))

  return {LONG_AUDIO_SIGNATURE: serve_long_audio,
          LONG_WAV_SIGNATURE: serve_long_wav}


def _contract_function(contract: serving_contract.ServingContract) -> dict:
  """serving_contract: the contract's JSON, for format=json."""
  @tf.function(input_signature=[
      tf.TensorSpec(None, tf.string, name=CONTRACT_INPUT)])
  def serve_contract(format_name):
    format_name = require(
        format_name, tf.equal(tf.rank(format_name), 0),
        f'{CONTRACT_INPUT} must be one string, {CONTRACT_FORMAT}: this '
        f'request has another rank')
    text = require(
        tf.constant(contract.to_json()),
        tf.equal(tf.reshape(format_name, []), CONTRACT_FORMAT),
        f'{CONTRACT_SIGNATURE} answers {CONTRACT_INPUT} {CONTRACT_FORMAT} '
        f'only')
    return {CONTRACT: text}

  return {CONTRACT_SIGNATURE: serve_contract}


def make_serving_functions(model,
                           contract: serving_contract.ServingContract,
                           features_of: ClipFeatures | None = None,
                           bfloat16_features_of: ClipFeatures | None = None):
  """{signature name: tf.function} bound to `model`, built from `contract`.

  The note signatures return {probabilities: float32 [B, classes], class_id:
  int64 [B], family: string [B], classes: string [B, classes]}; a note
  below the silence threshold gets family windows.NO_SOUND, class_id -1 and
  probabilities of zero, as a recording with no sounding window does. The
  recording signatures return, for the sounding windows, probabilities
  [W, classes] and start times [W], and for the whole recording
  probabilities [classes], class_id, family, classes [classes] and the
  number of sounding windows. The contract signature returns {contract:
  string []}, the contract's JSON. Bad requests raise InvalidArgument with
  a message.

  Args:
    features_of: what the model reads, from clips (default: the contract's
      MFCCs alone); its representation networks must be tracked by the
      export too, so that its weights are saved.
    bfloat16_features_of: the same in bfloat16 (ClipFeatures.for_inputs with
      precision bfloat16), for the audio signatures' BFLOAT16_SUFFIX twins;
      None: no twins.
  """
  answers = _Answers(model, contract, features_of or ClipFeatures(
      contract.feature_params))
  functions = {**_note_functions(answers, contract.feature_params),
               **_recording_functions(answers, contract),
               **_contract_function(contract)}
  if bfloat16_features_of is not None:
    fast = _Answers(model, contract, bfloat16_features_of)
    twins = {**_note_functions(fast, contract.feature_params),
             **_recording_functions(fast, contract)}
    functions.update({in_precision(name, 'bfloat16'): function
                      for name, function in twins.items()})
  return functions
