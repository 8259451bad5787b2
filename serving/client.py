r"""Asks a running TF Serving for the instrument family of WAV files.

Usage:
  python -m serving.client --host=localhost [--protocol=rest|grpc]
      [--port=8501|8500] [--model_name=nsynth_instrument] [--version=N]
      [--json] FILE.wav [FILE.wav ...]

Sends the WAV bytes to the `serving_wav` signature: over REST as
`{"signature_name": ..., "inputs": {"wav": [{"b64": ...}]}}`, over gRPC as a
PredictRequest to tensorflow-serving-api's PredictionService. Server errors
are printed as the server's own words, not a stack trace.
"""

from __future__ import annotations

import base64
import json
import sys
import urllib.error
import urllib.request
from typing import Sequence

import numpy as np
from absl import app
from absl import flags

from serving import results
from serving import signatures

class ServerError(RuntimeError):
  """TF Serving refused the request; the message is the server's."""


def predict_rest(host: str, port: int, model_name: str,
                 wav_contents: Sequence[bytes], version: int | None = None,
                 timeout: float = 30.0) -> dict[str, np.ndarray]:
  """POST /v1/models/<name>[/versions/<v>]:predict with b64 WAV bytes."""
  path = f'/v1/models/{model_name}'
  if version is not None:
    path += f'/versions/{version}'
  body = json.dumps({
      'signature_name': signatures.WAV_SIGNATURE,
      'inputs': {signatures.WAV_INPUT: [
          {'b64': base64.b64encode(c).decode('ascii')} for c in wav_contents]},
  }).encode('utf-8')
  request = urllib.request.Request(
      f'http://{host}:{port}{path}:predict', data=body,
      headers={'Content-Type': 'application/json'})
  try:
    with urllib.request.urlopen(request, timeout=timeout) as response:
      outputs = json.loads(response.read())['outputs']
  except urllib.error.HTTPError as e:
    detail = e.read().decode('utf-8', 'replace')
    try:
      detail = json.loads(detail).get('error', detail)
    except ValueError:
      pass
    raise ServerError(f'HTTP {e.code}: {results.readable_error(detail)}'
                      ) from None
  except urllib.error.URLError as e:
    raise ServerError(f'cannot reach http://{host}:{port}: {e.reason}'
                      ) from None
  return {key: np.asarray(value) for key, value in outputs.items()}


def predict_grpc(host: str, port: int, model_name: str,
                 wav_contents: Sequence[bytes], version: int | None = None,
                 timeout: float = 30.0) -> dict[str, np.ndarray]:
  """PredictionService.Predict with the WAV bytes as a string tensor."""
  import grpc  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tensorflow_serving.apis import predict_pb2  # pylint: disable=g-import-not-at-top
  from tensorflow_serving.apis import prediction_service_pb2_grpc  # pylint: disable=g-import-not-at-top
  request = predict_pb2.PredictRequest()
  request.model_spec.name = model_name
  request.model_spec.signature_name = signatures.WAV_SIGNATURE
  if version is not None:
    request.model_spec.version.value = version
  request.inputs[signatures.WAV_INPUT].CopyFrom(
      tf.make_tensor_proto(list(wav_contents), dtype=tf.string))
  with grpc.insecure_channel(f'{host}:{port}') as channel:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    try:
      response = stub.Predict(request, timeout=timeout)
    except grpc.RpcError as e:
      raise ServerError(f'{e.code().name}: '
                        f'{results.readable_error(e.details() or "")}'
                        ) from None
  return {key: tf.make_ndarray(value) for key, value in response.outputs.items()}


def main(argv):
  files = argv[1:]
  if not files:
    raise app.UsageError('Name at least one WAV file.')
  contents = []
  for path in files:
    with open(path, 'rb') as f:
      contents.append(f.read())
  options = flags.FLAGS
  port = options.port or (8501 if options.protocol == 'rest' else 8500)
  call = predict_rest if options.protocol == 'rest' else predict_grpc
  try:
    outputs = call(options.host, port, options.model_name, contents,
                   options.version, options.timeout)
  except ServerError as e:
    sys.exit(f'error from TF Serving at {options.host}:{port}: {e}')
  predictions = results.predictions_from_outputs(
      files, outputs[signatures.PROBABILITIES], outputs[signatures.CLASSES],
      options.top_k)
  print(results.to_json(predictions) if options.json
        else results.to_table(predictions))


def _define_flags():
  """Flags of the command only: importing this module defines none."""
  flags.DEFINE_string('host', 'localhost', 'TF Serving host.')
  flags.DEFINE_enum('protocol', 'rest', ['rest', 'grpc'],
                    'REST (port 8501) or gRPC (port 8500).')
  flags.DEFINE_integer('port', None, 'Default: 8501 (REST), 8500 (gRPC).')
  flags.DEFINE_string('model_name', 'nsynth_instrument',
                      'The model name TF Serving serves.')
  flags.DEFINE_integer('version', None, 'A model version (default: the '
                       'newest TF Serving has).')
  flags.DEFINE_float('timeout', 30.0, 'Seconds per request.')
  flags.DEFINE_integer('top_k', 3, 'Families to show per file.',
                       lower_bound=1)
  flags.DEFINE_boolean('json', False, 'Print JSON instead of a table.')


def run():
  _define_flags()
  app.run(main)


if __name__ == '__main__':
  run()
