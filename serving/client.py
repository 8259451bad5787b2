r"""Asks a running TF Serving for the instrument family of WAV files.

Usage:
  nsynth-client --host=localhost [--protocol=rest|grpc]
      [--port=8501|8500] [--model_name=nsynth_instrument] [--version=N]
      [--json] [--timeline] FILE.wav [FILE.wav ...]

Sends the WAV bytes of notes (up to 4 s) together to the `serving_wav`
signature, and each longer recording alone to `serving_long_wav`: over REST
as `{"signature_name": ..., "inputs": {"wav": [{"b64": ...}]}}` (one
`{"b64": ...}` for a recording), over gRPC as a PredictRequest to
tensorflow-serving-api's PredictionService. Server errors are printed as the
server's own words, not a stack trace.
"""

# First: as a command, this quiets TensorFlow before anything imports it.
from nsynth_contracts import cli

# isort: split

import base64
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Sequence

import numpy as np
from absl import flags

from nsynth_contracts import audio
from nsynth_contracts import feature_params
from serving import naming
from serving import results
from serving import signatures


class ServerError(cli.UserError):
  """TF Serving refused the request or answered nonsense; the message says
  which, in one line."""


def checked_outputs(outputs, num_files: int | None, where: str
                    ) -> dict[str, np.ndarray]:
  """The reply's outputs, if they answer `num_files` files (None: one
  recording, answered as a whole).

  Raises:
    ServerError: outputs missing, or not one row per file.
  """
  if not isinstance(outputs, dict):
    raise ServerError(f'the reply from {where} holds no outputs object')
  missing = [k for k in (signatures.PROBABILITIES, signatures.CLASSES)
             if k not in outputs]
  if missing:
    raise ServerError(f'the reply from {where} lacks the outputs {missing} '
                      f'(it has {sorted(outputs)[:8]})')
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
  detail = ' '.join(detail.split())
  return detail[:200] + ('...' if len(detail) > 200 else '')


def predict_rest(host: str, port: int, model_name: str,
                 wav_contents: Sequence[bytes] | bytes,
                 version: int | None = None,
                 timeout: float = 30.0) -> dict[str, np.ndarray]:
  """POST /v1/models/<name>[/versions/<v>]:predict with b64 WAV bytes.

  Args:
    wav_contents: a list of notes' WAV files (serving_wav, one row each), or
      one recording's bytes (serving_long_wav, answered per window and as
      a whole).

  Raises:
    ServerError: the server is unreachable, slow, refuses the request, or
      replies with something other than one answer per file.
  """
  recording = isinstance(wav_contents, bytes)
  if not naming.is_model_name(model_name):
    raise ServerError(f'model name {model_name!r} {naming.MESSAGE}')
  path = f'/v1/models/{model_name}'
  if version is not None:
    path += f'/versions/{version}'
  where = f'http://{host}:{port}'
  b64 = lambda data: {'b64': base64.b64encode(data).decode('ascii')}
  body = json.dumps({
      'signature_name': (signatures.LONG_WAV_SIGNATURE if recording
                         else signatures.WAV_SIGNATURE),
      'inputs': {signatures.WAV_INPUT: b64(wav_contents) if recording
                 else [b64(c) for c in wav_contents]},
  }).encode('utf-8')
  request = urllib.request.Request(
      f'{where}{path}:predict', data=body,
      headers={'Content-Type': 'application/json'})
  try:
    with urllib.request.urlopen(request, timeout=timeout) as response:
      reply = response.read()
  except urllib.error.HTTPError as e:
    raise ServerError(f'HTTP {e.code}: {_error_detail(e.read())}') from None
  except urllib.error.URLError as e:
    if isinstance(e.reason, (TimeoutError, socket.timeout)):
      raise ServerError(f'no reply from {where} within {timeout:g} s'
                        ) from None
    raise ServerError(f'cannot reach {where}: {e.reason}') from None
  except TimeoutError:
    raise ServerError(f'no reply from {where} within {timeout:g} s') from None
  except OSError as e:
    raise ServerError(f'the connection to {where} failed: '
                      f'{e.strerror or type(e).__name__}') from None
  try:
    parsed = json.loads(reply)
  except (ValueError, RecursionError):
    raise ServerError(f'the reply from {where} is not JSON this client can '
                      f'read') from None
  outputs = parsed.get('outputs') if isinstance(parsed, dict) else None
  return checked_outputs(outputs, None if recording else len(wav_contents),
                         where)


def predict_grpc(host: str, port: int, model_name: str,
                 wav_contents: Sequence[bytes] | bytes,
                 version: int | None = None,
                 timeout: float = 30.0) -> dict[str, np.ndarray]:
  """PredictionService.Predict with the WAV bytes as a string tensor (see
  predict_rest for notes and recordings)."""
  recording = isinstance(wav_contents, bytes)
  import grpc  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tensorflow_serving.apis import predict_pb2  # pylint: disable=g-import-not-at-top
  from tensorflow_serving.apis import prediction_service_pb2_grpc  # pylint: disable=g-import-not-at-top
  request = predict_pb2.PredictRequest()
  request.model_spec.name = model_name
  request.model_spec.signature_name = (
      signatures.LONG_WAV_SIGNATURE if recording else signatures.WAV_SIGNATURE)
  if version is not None:
    request.model_spec.version.value = version
  request.inputs[signatures.WAV_INPUT].CopyFrom(tf.make_tensor_proto(
      wav_contents if recording else list(wav_contents), dtype=tf.string))
  with grpc.insecure_channel(f'{host}:{port}') as channel:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    try:
      response = stub.Predict(request, timeout=timeout)
    except grpc.RpcError as e:
      raise ServerError(f'{e.code().name}: '
                        f'{results.readable_error(e.details() or "")}'
                        ) from None
  return checked_outputs(
      {key: tf.make_ndarray(value) for key, value in response.outputs.items()},
      None if recording else len(wav_contents), f'{host}:{port}')


def _seconds(data: bytes) -> float:
  """A WAV file's length from its header (0 if it has none: the server
  then says what is wrong with it)."""
  try:
    header = audio.read_header(data)
  except audio.AudioError:
    return 0.0
  return header.frames / header.sample_rate_hz


def _main(argv: list[str]) -> None:
  files = argv[1:]
  if not files:
    raise cli.UserError('name at least one WAV file')
  contents = {}
  for path in files:
    try:
      real, _ = audio.checked_local_file(path,
                                         max_bytes=audio.MAX_RECORDING_BYTES)
      with open(real, 'rb') as f:
        contents[path] = f.read()
    except audio.AudioError as e:
      raise cli.UserError(f'{path}: {e}') from None
    except OSError as e:
      raise cli.UserError(f'{path}: {e.strerror or type(e).__name__}'
                          ) from None
  options = flags.FLAGS
  port = options.port or (8501 if options.protocol == 'rest' else 8500)
  call = predict_rest if options.protocol == 'rest' else predict_grpc
  clip_seconds = feature_params.DEFAULT_PARAMS.clip_seconds
  notes = [f for f in files if _seconds(contents[f]) <= clip_seconds]
  predictions = {}
  try:
    if notes:
      outputs = call(options.host, port, options.model_name,
                     [contents[f] for f in notes], options.version,
                     options.timeout)
      predictions.update((p.file, p) for p in results.predictions_from_outputs(
          notes, outputs[signatures.PROBABILITIES],
          outputs[signatures.CLASSES], options.top_k))
    for f in files:
      if f not in predictions:  # A recording: one request each.
        outputs = call(options.host, port, options.model_name, contents[f],
                       options.version, options.timeout)
        predictions[f] = results.recording_prediction(
            f, _seconds(contents[f]), outputs, options.top_k)
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
  flags.DEFINE_float('timeout', 30.0, 'Seconds per request.', lower_bound=0.0)
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
