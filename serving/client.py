r"""Asks a running TF Serving for the instrument family of audio files.

Usage:
  nsynth-client --host=localhost [--protocol=rest|grpc]
      [--port=8501|8500] [--model_name=nsynth_instrument] [--version=N]
      [--json] [--timeline] [--timeout=30] FILE [FILE ...]

Each file is decoded here first, by nsynth_contracts.audio_decoding, the
decoder of the Beam job and nsynth-predict (WAV, FLAC, OGG or MP3, any rate,
mono or not), so a file the Beam job refuses is refused before any request,
in the same words. Notes (up to 4 s) are sent together, each longer
recording alone. A 16-bit PCM WAV at the model's rate is sent as its bytes,
to `serving_wav` (notes) or `serving_long_wav`, which decode them to the same
samples in the graph; anything else as the decoded float samples, to
`serving_default` or `serving_long_audio`. Over REST as TF Serving's JSON
(`{"b64": ...}` for bytes), over gRPC as a PredictRequest to
tensorflow-serving-api's PredictionService.

--timeout bounds each whole request, from connecting to the last byte of the
reply, and a reply larger than its request's answers can be is refused.
Names and messages from the server are printed as printable text only.
Server errors are printed as the server's own words, not a stack trace.
"""

# First: as a command, this quiets TensorFlow before anything imports it.
from nsynth_contracts import cli

# isort: split

import base64
import dataclasses
import json
from collections.abc import Sequence

import numpy as np
from absl import flags

from nsynth_contracts import audio_decoding
from nsynth_contracts import audio_limits
from nsynth_contracts import feature_params
from nsynth_contracts import file_safety
from nsynth_contracts import window_params
from serving import bounded_http
from serving import naming
from serving import results
from serving import signatures

# What one answered row may take in a reply: a probability and a class name
# per family, with room for a thousand families; and what any reply may take
# on top of its rows. A reply beyond this is no answer to our request.
REPLY_BYTES_PER_ROW = 2**16
REPLY_BYTES_BASE = 2**20


class ServerError(cli.UserError):
  """TF Serving refused the request or answered nonsense; the message says
  which, in one line."""


Inputs = Sequence[bytes] | bytes | np.ndarray


@dataclasses.dataclass(frozen=True)
class _Request:
  signature: str
  input_name: str
  rows: int | None        # files answered; None: one recording

  @property
  def max_reply_bytes(self) -> int:
    # A recording's answer: a row per window, and one for the whole.
    rows = self.rows or 1 + window_params.DEFAULT_WINDOWS.max_windows(
        feature_params.DEFAULT_PARAMS)
    return REPLY_BYTES_BASE + REPLY_BYTES_PER_ROW * rows


def _request_for(inputs: Inputs) -> _Request:
  """The signature that answers `inputs`: WAV bytes of notes (a list), of
  one recording (bytes), float notes [files, samples] or one float
  recording [samples]."""
  if isinstance(inputs, bytes):
    return _Request(signatures.LONG_WAV_SIGNATURE,
                    signatures.LONG_WAV_INPUT, None)
  if isinstance(inputs, np.ndarray):
    if inputs.ndim == 1:
      return _Request(signatures.LONG_AUDIO_SIGNATURE,
                      signatures.LONG_AUDIO_INPUT, None)
    return _Request(signatures.AUDIO_SIGNATURE, signatures.AUDIO_INPUT,
                    len(inputs))
  return _Request(signatures.WAV_SIGNATURE, signatures.WAV_INPUT, len(inputs))


def checked_outputs(outputs, num_files: int | None, where: str
                    ) -> dict[str, np.ndarray]:
  """The reply's outputs, if they answer `num_files` files (None: one
  recording, answered as a whole), with every string made printable.

  Raises:
    ServerError: outputs missing, or not one row per file.
  """
  if not isinstance(outputs, dict):
    raise ServerError(f'the reply from {where} holds no outputs object')
  missing = [k for k in (signatures.PROBABILITIES, signatures.CLASSES)
             if k not in outputs]
  if missing:
    raise ServerError(f'the reply from {where} lacks the outputs {missing} '
                      f'(it has {[results.printable(k) for k in outputs][:8]})')
  if num_files is None:
    missing = [k for k in (signatures.FAMILY, signatures.WINDOW_PROBABILITIES,
                           signatures.WINDOW_START_SECONDS) if k not in outputs]
    if missing:
      raise ServerError(f'the reply from {where} lacks the outputs {missing} '
                        f'a recording is answered with')
  try:
    arrays = {key: np.asarray(value) for key, value in outputs.items()}
  except (ValueError, TypeError):
    raise ServerError(f'the reply from {where} holds outputs that are not '
                      f'rectangular arrays') from None
  probabilities = arrays[signatures.PROBABILITIES]
  classes = arrays[signatures.CLASSES]
  # Notes: [files, classes] each; a recording: [classes] each.
  rank = 1 if num_files is None else 2
  if probabilities.ndim != rank or classes.ndim != rank:
    raise ServerError(f'the reply from {where} has probabilities of rank '
                      f'{probabilities.ndim} and classes of rank '
                      f'{classes.ndim}; {rank} was expected')
  if num_files is not None and probabilities.shape[0] != num_files:
    raise ServerError(f'the reply from {where} has {probabilities.shape[0]} '
                      f'rows of {signatures.PROBABILITIES!r} for {num_files} '
                      f'file(s)')
  if probabilities.shape != classes.shape:
    raise ServerError(f'the reply from {where} names {classes.shape[-1]} '
                      f'classes for {probabilities.shape[-1]} probabilities')
  if classes.dtype.kind not in 'USO' or not all(
      isinstance(c, (str, bytes)) for c in classes.ravel().tolist()):
    raise ServerError(f'the reply from {where} has class names that are not '
                      f'strings')
  if probabilities.dtype.kind not in 'fi' or not np.all(
      np.isfinite(probabilities)) or probabilities.min(initial=0) < 0 or (
          probabilities.max(initial=0) > 1 + 1e-6):
    raise ServerError(f'the reply from {where} holds probabilities that are '
                      f'not numbers in [0, 1]')
  for key in (signatures.CLASSES, signatures.FAMILY):
    if key in arrays and arrays[key].dtype.kind in 'USO':
      arrays[key] = np.vectorize(results.printable, otypes=[object])(
          arrays[key]) if arrays[key].size else arrays[key]
  return arrays


def _error_detail(body: bytes) -> str:
  """TF Serving's REST error body is {"error": "..."}; anything else is
  shown as it came, briefly."""
  text = body.decode('utf-8', 'replace')
  try:
    parsed = json.loads(text)
  except (ValueError, RecursionError):
    parsed = text
  if isinstance(parsed, dict) and isinstance(parsed.get('error'), str):
    return results.readable_error(parsed['error'])
  detail = parsed if isinstance(parsed, str) else json.dumps(parsed)
  detail = results.printable(' '.join(detail.split()))
  return detail[:200] + ('...' if len(detail) > 200 else '')


def _rest_body(request: _Request, inputs: Inputs) -> bytes:
  def b64(data):
    return {'b64': base64.b64encode(data).decode('ascii')}
  if isinstance(inputs, bytes):
    value = b64(inputs)
  elif isinstance(inputs, np.ndarray):
    # float32 -> Python floats is exact, and TF Serving parses each back to
    # the same float32.
    value = inputs.astype(np.float32).tolist()
  else:
    value = [b64(c) for c in inputs]
  return json.dumps({'signature_name': request.signature,
                     'inputs': {request.input_name: value}}).encode('utf-8')


def predict_rest(host: str, port: int, model_name: str, inputs: Inputs,
                 version: int | None = None,
                 timeout: float = 30.0) -> dict[str, np.ndarray]:
  """POST /v1/models/<name>[/versions/<v>]:predict.

  Args:
    inputs: notes as a list of WAV files' bytes (serving_wav, one row each)
      or as float32 [files, samples] (serving_default); one recording as
      its WAV bytes (serving_long_wav) or float32 [samples]
      (serving_long_audio), answered per window and as a whole.
    timeout: seconds for the whole request.

  Raises:
    ServerError: the server is unreachable, slow, refuses the request, or
      replies with something other than one answer per file.
  """
  if not naming.is_model_name(model_name):
    raise ServerError(f'model name {model_name!r} {naming.MESSAGE}')
  request = _request_for(inputs)
  path = f'/v1/models/{model_name}'
  if version is not None:
    path += f'/versions/{version}'
  where = f'http://{host}:{port}'
  try:
    status, reply = bounded_http.post(host, port, f'{path}:predict',
                                      _rest_body(request, inputs), timeout,
                                      request.max_reply_bytes)
  except bounded_http.RequestError as e:
    raise ServerError(str(e)) from None
  if status != 200:
    raise ServerError(f'HTTP {status}: {_error_detail(reply)}')
  try:
    parsed = json.loads(reply)
  except (ValueError, RecursionError):
    raise ServerError(f'the reply from {where} is not JSON this client can '
                      f'read') from None
  outputs = parsed.get('outputs') if isinstance(parsed, dict) else None
  return checked_outputs(outputs, request.rows, where)


def predict_grpc(host: str, port: int, model_name: str, inputs: Inputs,
                 version: int | None = None,
                 timeout: float = 30.0) -> dict[str, np.ndarray]:
  """PredictionService.Predict within `timeout` (gRPC's deadline), with a
  reply no larger than the request's answers can be (see predict_rest for
  the inputs)."""
  import grpc  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tensorflow_serving.apis import predict_pb2  # pylint: disable=g-import-not-at-top
  from tensorflow_serving.apis import prediction_service_pb2_grpc  # pylint: disable=g-import-not-at-top
  request = _request_for(inputs)
  message = predict_pb2.PredictRequest()
  message.model_spec.name = model_name
  message.model_spec.signature_name = request.signature
  if version is not None:
    message.model_spec.version.value = version
  if isinstance(inputs, np.ndarray):
    tensor = tf.make_tensor_proto(inputs.astype(np.float32))
  else:
    tensor = tf.make_tensor_proto(
        inputs if isinstance(inputs, bytes) else list(inputs), dtype=tf.string)
  message.inputs[request.input_name].CopyFrom(tensor)
  where = f'{host}:{port}'
  options = [('grpc.max_receive_message_length', request.max_reply_bytes)]
  with grpc.insecure_channel(where, options=options) as channel:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    try:
      response = stub.Predict(message, timeout=timeout)
    except grpc.RpcError as e:
      if e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
        raise ServerError(f'the reply from {where} is larger than '
                          f'{request.max_reply_bytes} bytes, more than an '
                          f'answer to this request can be; refused') from None
      raise ServerError(f'{e.code().name}: '
                        f'{results.readable_error(e.details() or "")}'
                        ) from None
  return checked_outputs(
      {key: tf.make_ndarray(value) for key, value in response.outputs.items()},
      request.rows, where)


@dataclasses.dataclass(frozen=True)
class LocalAudio:
  """A file as the client sends it."""
  samples: np.ndarray     # float32 [samples], mono, at the model's rate
  wav: bytes | None       # its bytes, when serving_wav decodes them to
                          # `samples`: 16-bit PCM WAV at the model's rate


def read_audio(path: str, params: feature_params.FeatureParams,
               max_seconds: float) -> LocalAudio:
  """The file decoded as the Beam job and nsynth-predict decode it.

  Raises:
    audio_limits.AudioError: what the decoder refuses, in its words.
  """
  decoded = audio_decoding.read_file(path, params.sample_rate_hz,
                                     max_seconds=max_seconds)
  header = decoded.wav
  if header is None or header.encoding != 'pcm16' or (
      decoded.source_rate_hz != params.sample_rate_hz):
    return LocalAudio(decoded.samples, None)
  # Up to the end of the audio data: what follows is no business of the
  # server's (and a streaming header's size is resolved by the length).
  with file_safety.open_local_file(path) as f:
    return LocalAudio(decoded.samples,
                      f.read(header.data_offset + header.data_bytes))


def _main(argv: list[str]) -> None:
  files = argv[1:]
  if not files:
    raise cli.UserError('name at least one audio file')
  params = feature_params.DEFAULT_PARAMS
  audio = {}
  for path in files:
    try:
      audio[path] = read_audio(path, params,
                               window_params.DEFAULT_WINDOWS.max_seconds)
    except audio_limits.AudioError as e:
      raise cli.UserError(f'{path}: {e}') from None
  options = flags.FLAGS
  port = options.port or (8501 if options.protocol == 'rest' else 8500)
  predict = predict_rest if options.protocol == 'rest' else predict_grpc

  def call(inputs):
    return predict(options.host, port, options.model_name, inputs,
                   options.version, options.timeout)

  notes = [f for f in files if len(audio[f].samples) <= params.clip_samples]
  predictions = {}
  try:
    for group in ([f for f in notes if audio[f].wav is not None],
                  [f for f in notes if audio[f].wav is None]):
      if not group:
        continue
      outputs = call([audio[f].wav for f in group] if audio[group[0]].wav
                     else np.stack([feature_params.pad_or_trim_numpy(
                         audio[f].samples, params) for f in group]))
      predictions.update((p.file, p) for p in results.predictions_from_outputs(
          group, outputs[signatures.PROBABILITIES],
          outputs[signatures.CLASSES], options.top_k))
    for f in files:
      if f not in predictions:  # A recording: one request each.
        outputs = call(audio[f].wav if audio[f].wav else audio[f].samples)
        predictions[f] = results.recording_prediction(
            f, len(audio[f].samples) / params.sample_rate_hz, outputs,
            options.top_k)
  except ServerError as e:
    raise ServerError(f'TF Serving at {options.host}:{port}: {e}') from None
  ordered = [predictions[f] for f in files]
  print(results.to_json(ordered, options.timeline) if options.json
        else results.to_table(ordered, options.timeline))


def _define_flags():
  """Flags of the command only: importing this module defines none."""
  flags.DEFINE_string('host', 'localhost', 'TF Serving host.')
  flags.DEFINE_enum('protocol', 'rest', ['rest', 'grpc'],
                    'REST (port 8501) or gRPC (port 8500).')
  flags.DEFINE_integer('port', None, 'Default: 8501 (REST), 8500 (gRPC).',
                       lower_bound=1, upper_bound=65535)
  flags.DEFINE_string('model_name', 'nsynth_instrument',
                      'The model name TF Serving serves.')
  flags.register_validator('model_name', naming.is_model_name,
                           message=f'--model_name {naming.MESSAGE}')
  flags.DEFINE_integer('version', None, 'A model version (default: the '
                       'newest TF Serving has).')
  flags.DEFINE_float('timeout', 30.0, 'Seconds for each whole request, from '
                     'connecting to the last byte of the reply.',
                     lower_bound=0.0)
  flags.DEFINE_integer('top_k', 3, 'Families to show per file.',
                       lower_bound=1)
  flags.DEFINE_boolean('json', False, 'Print JSON instead of a table.')
  flags.DEFINE_boolean('timeline', False, 'For recordings longer than a '
                       'note, also show each window.')


def main() -> None:
  """Console entry point (nsynth-client)."""
  cli.run(_define_flags, _main)


if __name__ == '__main__':
  main()
