"""Asking a running TF Serving: Predict over REST or gRPC, bounded.

Notes go as a batch of WAV files' bytes (`serving_wav`) or of float clips
(`serving_default`); one recording as its WAV bytes (`serving_long_wav`) or
its float samples (`serving_long_audio`). Over REST as TF Serving's JSON
(`{"b64": ...}` for bytes), over gRPC as a PredictRequest to
tensorflow-serving-api's PredictionService. The export's contract comes the
same way, from its `serving_contract` signature.

Every request is bounded: in time, from connecting to the last byte of the
reply, and in the size of the reply, which may not be larger than an answer
to the request can be (serving.bounded_http for REST, gRPC's own limits).
"""

import base64
import dataclasses
import json
from collections.abc import Sequence

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from nsynth_contracts import serving_contract
from serving import bounded_http
from serving import naming
from serving import replies
from serving import results
from serving import signatures
from serving.replies import ServerError

# What one answered row may take in a reply: a probability and a class name
# per family, with room for a thousand families; and what any reply may take
# on top of its rows. A reply beyond this is no answer to our request.
REPLY_BYTES_PER_ROW = 2**16
REPLY_BYTES_BASE = 2**20

Inputs = Sequence[bytes] | bytes | np.ndarray


@dataclasses.dataclass(frozen=True)
class _Request:
  signature: str
  input_name: str
  files: int | None       # files answered; None: one recording
  max_windows: int = 0    # the most windows a recording is answered with

  @property
  def max_reply_bytes(self) -> int:
    # A recording's answer: a row per window, and one for the whole.
    rows = 1 + self.max_windows if self.files is None else self.files
    return REPLY_BYTES_BASE + REPLY_BYTES_PER_ROW * rows


def _request_for(inputs: Inputs, max_windows: int | None) -> _Request:
  """The signature that answers `inputs`: WAV bytes of notes (a list), of
  one recording (bytes), float notes [files, samples] or one float
  recording [samples]."""
  recording = isinstance(inputs, bytes) or (
      isinstance(inputs, np.ndarray) and inputs.ndim == 1)
  if not recording:
    if isinstance(inputs, np.ndarray):
      return _Request(signatures.AUDIO_SIGNATURE, signatures.AUDIO_INPUT,
                      len(inputs))
    return _Request(signatures.WAV_SIGNATURE, signatures.WAV_INPUT,
                    len(inputs))
  if max_windows is None:
    raise ValueError('a recording is answered per window: pass max_windows '
                     '(the export contract\'s max_windows())')
  if isinstance(inputs, bytes):
    return _Request(signatures.LONG_WAV_SIGNATURE, signatures.LONG_WAV_INPUT,
                    None, max_windows)
  return _Request(signatures.LONG_AUDIO_SIGNATURE,
                  signatures.LONG_AUDIO_INPUT, None, max_windows)


_CONTRACT_REQUEST = _Request(signatures.CONTRACT_SIGNATURE,
                             signatures.CONTRACT_INPUT, 1)


def _rest_value(inputs: Inputs):
  def b64(data):
    return {'b64': base64.b64encode(data).decode('ascii')}
  if isinstance(inputs, bytes):
    return b64(inputs)
  if isinstance(inputs, np.ndarray):
    # float32 -> Python floats is exact, and TF Serving parses each back to
    # the same float32.
    return inputs.astype(np.float32).tolist()
  return [b64(c) for c in inputs]


def _post(host: str, port: int, model_name: str, version: int | None,
          timeout: float, request: _Request, value) -> dict | str:
  """The `outputs` of a REST predict reply: an object of named outputs, or
  the value itself when the signature has one output (TF Serving's
  columnar format names none then)."""
  if not naming.is_model_name(model_name):
    raise ServerError(f'model name {model_name!r} {naming.MESSAGE}')
  path = f'/v1/models/{model_name}'
  if version is not None:
    path += f'/versions/{version}'
  where = f'http://{host}:{port}'
  body = json.dumps({'signature_name': request.signature,
                     'inputs': {request.input_name: value}}).encode('utf-8')
  try:
    status, reply = bounded_http.post(host, port, f'{path}:predict', body,
                                      timeout, request.max_reply_bytes)
  except bounded_http.RequestError as e:
    raise ServerError(str(e)) from None
  if status != 200:
    raise ServerError(f'HTTP {status}: {replies.error_detail(reply)}')
  try:
    parsed = json.loads(reply)
  except (ValueError, RecursionError):
    raise ServerError(f'the reply from {where} is not JSON this client can '
                      f'read') from None
  return parsed.get('outputs') if isinstance(parsed, dict) else None


def predict_rest(host: str, port: int, model_name: str, inputs: Inputs,
                 version: int | None = None, timeout: float = 30.0,
                 max_windows: int | None = None) -> dict[str, np.ndarray]:
  """POST /v1/models/<name>[/versions/<v>]:predict.

  Args:
    inputs: notes as a list of WAV files' bytes (serving_wav, one row each)
      or as float32 [files, samples] (serving_default); one recording as
      its WAV bytes (serving_long_wav) or float32 [samples]
      (serving_long_audio), answered per window and as a whole.
    timeout: seconds for the whole request.
    max_windows: for a recording, the most windows it can be answered with
      (its contract's windows.num_windows of its samples, or max_windows()
      when its length is not known), which bounds the reply and its
      window outputs.

  Raises:
    ServerError: the server is unreachable, slow, refuses the request, or
      replies with something other than one answer per file.
  """
  request = _request_for(inputs, max_windows)
  outputs = _post(host, port, model_name, version, timeout, request,
                  _rest_value(inputs))
  return replies.checked_outputs(outputs, request.files,
                                 f'http://{host}:{port}', request.max_windows)


def _grpc_call(host: str, port: int, model_name: str, version: int | None,
               timeout: float, request: _Request,
               tensor) -> dict[str, np.ndarray]:
  """PredictionService.Predict within `timeout` (gRPC's deadline), with a
  reply no larger than the request's answers can be: its outputs."""
  message = predict_pb2.PredictRequest()
  message.model_spec.name = model_name
  message.model_spec.signature_name = request.signature
  if version is not None:
    message.model_spec.version.value = version
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
  return {key: tf.make_ndarray(value)
          for key, value in response.outputs.items()}


def predict_grpc(host: str, port: int, model_name: str, inputs: Inputs,
                 version: int | None = None, timeout: float = 30.0,
                 max_windows: int | None = None) -> dict[str, np.ndarray]:
  """PredictionService.Predict (see predict_rest for the arguments)."""
  request = _request_for(inputs, max_windows)
  if isinstance(inputs, np.ndarray):
    tensor = tf.make_tensor_proto(inputs.astype(np.float32))
  else:
    tensor = tf.make_tensor_proto(
        inputs if isinstance(inputs, bytes) else list(inputs), dtype=tf.string)
  outputs = _grpc_call(host, port, model_name, version, timeout, request,
                       tensor)
  return replies.checked_outputs(outputs, request.files, f'{host}:{port}',
                                 request.max_windows)


def _contract_from(outputs, model_name: str, where: str
                   ) -> serving_contract.ServingContract:
  text = outputs.get(signatures.CONTRACT) if isinstance(outputs, dict) else (
      outputs)
  if isinstance(text, np.ndarray) and text.shape == ():
    text = text.item()
  if not isinstance(text, (str, bytes)):
    raise ServerError(f'the reply from {where} to {_CONTRACT_REQUEST.signature}'
                      f' holds no contract')
  try:
    return serving_contract.ServingContract.from_json(
        text, f'model {model_name} at {where}')
  except serving_contract.ContractError as e:
    raise ServerError(str(e)) from None


def contract_rest(host: str, port: int, model_name: str,
                  version: int | None = None, timeout: float = 30.0
                  ) -> serving_contract.ServingContract:
  """The served export's contract, from its serving_contract signature.

  Raises:
    ServerError: as predict_rest, or the export answers no contract this
      client can read.
  """
  outputs = _post(host, port, model_name, version, timeout, _CONTRACT_REQUEST,
                  signatures.CONTRACT_FORMAT)
  return _contract_from(outputs, model_name, f'http://{host}:{port}')


def contract_grpc(host: str, port: int, model_name: str,
                  version: int | None = None, timeout: float = 30.0
                  ) -> serving_contract.ServingContract:
  """contract_rest over gRPC."""
  outputs = _grpc_call(host, port, model_name, version, timeout,
                       _CONTRACT_REQUEST, tf.make_tensor_proto(
                           signatures.CONTRACT_FORMAT, dtype=tf.string))
  return _contract_from(outputs, model_name, f'{host}:{port}')
