"""nsynth-client against servers that misbehave on purpose, on 127.0.0.1.

A slow or endless reply must not hold the client past --timeout or fill its
memory, and what a server names (families, classes, errors) must not reach
the user's terminal as control sequences.
"""

import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent import futures

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from nsynth_contracts import feature_params
from nsynth_contracts import labels
from nsynth_contracts import serving_contract
from nsynth_contracts import window_params
from serving import signatures
from serving import tf_serving
from tests.conftest import wav_bytes

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTE = (0.5 * np.sin(np.arange(16000) / 3.0)).astype(np.float32)
ESCAPES = '\x1b[2J\x1b[31m\x07\u202e'   # clear, red, bell, right-to-left


class RawServer:
  """A TCP server on 127.0.0.1 that reads a request's headers and body,
  then calls `reply(socket)` to answer as it pleases."""

  def __init__(self, reply):
    self.requests = 0
    self._listener = socket.socket()
    self._listener.bind(('127.0.0.1', 0))
    self._listener.listen(8)
    self.port = self._listener.getsockname()[1]
    self._reply = reply
    self._closed = threading.Event()
    threading.Thread(target=self._serve, daemon=True).start()

  def _serve(self):
    while not self._closed.is_set():
      try:
        connection, _ = self._listener.accept()
      except OSError:
        return
      threading.Thread(target=self._answer, args=(connection,),
                       daemon=True).start()

  def _answer(self, connection):
    with connection:
      data = b''
      while b'\r\n\r\n' not in data:
        data += connection.recv(65536)
      head, body = data.split(b'\r\n\r\n', 1)
      length = int(next(line.split(b':')[1] for line in head.split(b'\r\n')
                        if line.lower().startswith(b'content-length')))
      while len(body) < length:
        body += connection.recv(65536)
      self.requests += 1
      try:
        self._reply(connection, body)
      except OSError:
        pass   # The client hung up: what it should do.

  def close(self):
    self._closed.set()
    self._listener.close()


def drip(connection, _):
  """A valid reply, one byte a second."""
  reply = (b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n' +
           b'{"outputs": {}}'.ljust(100))
  for byte in reply:
    connection.sendall(bytes([byte]))
    time.sleep(1.0)


def drip_http10(connection, _):
  """A valid HTTP/1.0 reply (the server closes the connection to end it),
  one byte a second."""
  reply = b'HTTP/1.0 200 OK\r\n\r\n' + b'{"outputs": {}}'.ljust(100)
  for byte in reply:
    connection.sendall(bytes([byte]))
    time.sleep(1.0)


def cut_short(connection, _):
  """A reply whose connection closes before the body its Content-Length
  promised."""
  connection.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n'
                     b'{"outputs": ')


def cut_short_chunked(connection, _):
  connection.sendall(b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n'
                     b'\r\n64\r\n{"outputs": ')


def endless(connection, _):
  """A chunked reply that never ends: 1 MiB chunks of spaces."""
  connection.sendall(b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n')
  chunk = b' ' * 2**20
  while True:
    connection.sendall(b'%x\r\n' % len(chunk) + chunk + b'\r\n')


# The contract of an export of the default features, as TF Serving answers
# the one-output serving_contract signature (the value alone).
CONTRACT_REPLY = json.dumps({'outputs': serving_contract.ServingContract(
    feature_params.DEFAULT_PARAMS, window_params.DEFAULT_WINDOWS,
    labels.LabelVocabulary.from_filters(), ('pcm16',)).to_json()}).encode()


def hostile_names(connection, body):
  """A well-formed answer whose names carry terminal control sequences."""
  request = json.loads(body)
  if request['signature_name'] == signatures.CONTRACT_SIGNATURE:
    connection.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n'
                       % len(CONTRACT_REPLY) + CONTRACT_REPLY)
    return
  rows = len(request['inputs'][signatures.WAV_INPUT])
  names = [f'bass{ESCAPES}', 'string']
  reply = json.dumps({'outputs': {
      signatures.PROBABILITIES: [[0.9, 0.1]] * rows,
      signatures.CLASSES: [names] * rows,
      signatures.FAMILY: [names[0]] * rows}}).encode()
  connection.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n'
                     % len(reply) + reply)


def hostile_error(connection, _):
  reply = json.dumps({'error': f'model {ESCAPES} is on fire'}).encode()
  connection.sendall(b'HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\n\r\n'
                     % len(reply) + reply)


@pytest.fixture
def server():
  servers = []

  def start(reply):
    servers.append(RawServer(reply))
    return servers[-1]
  yield start
  for s in servers:
    s.close()


@pytest.mark.parametrize('reply', [drip, drip_http10],
                         ids=['HTTP/1.1', 'HTTP/1.0, the reply owns the socket'])
def test_the_timeout_bounds_the_whole_request_not_each_read(server, reply):
  slow = server(reply)
  start = time.monotonic()
  with pytest.raises(tf_serving.ServerError, match=r'no reply from .* within 3 s'):
    tf_serving.predict_rest('127.0.0.1', slow.port, 'nsynth_instrument',
                            [wav_bytes(NOTE)], timeout=3)
  assert time.monotonic() - start < 4.5


@pytest.mark.parametrize('reply', [cut_short, cut_short_chunked])
def test_a_connection_closed_mid_reply_says_so(server, reply):
  broken = server(reply)
  with pytest.raises(tf_serving.ServerError) as error:
    tf_serving.predict_rest('127.0.0.1', broken.port, 'nsynth_instrument',
                            [wav_bytes(NOTE)], timeout=10)
  assert str(error.value).startswith(
      f'the connection to http://127.0.0.1:{broken.port} closed mid-reply')


def test_an_endless_reply_is_refused_at_a_bound_not_read_into_memory(server):
  flood = server(endless)
  start = time.monotonic()
  with pytest.raises(tf_serving.ServerError) as error:
    tf_serving.predict_rest('127.0.0.1', flood.port, 'nsynth_instrument',
                            [wav_bytes(NOTE)] * 2, timeout=60)
  expected = tf_serving.REPLY_BYTES_BASE + 2 * tf_serving.REPLY_BYTES_PER_ROW
  assert str(error.value) == (
      f'the reply from http://127.0.0.1:{flood.port} is larger than '
      f'{expected} bytes, more than an answer to this request can be; '
      f'refused')
  assert time.monotonic() - start < 10


def run_client(port, *args):
  return subprocess.run(
      [sys.executable, '-m', 'serving.client', '--host=127.0.0.1',
       f'--port={port}', *map(str, args)], cwd=REPO, capture_output=True,
      text=True, timeout=120)


@pytest.mark.slow
@pytest.mark.parametrize('output', ['table', 'json'])
def test_names_from_the_server_are_printed_as_printable_text(
    server, tmp_path, output):
  hostile = server(hostile_names)
  note = tmp_path / 'note.wav'
  note.write_bytes(wav_bytes(NOTE))
  result = run_client(hostile.port, note, *(['--json'] if output == 'json'
                                            else []))
  assert result.returncode == 0, result.stderr
  assert 'bass?[2J?[31m??' in result.stdout
  assert not any(c in result.stdout for c in '\x1b\x07\u202e')
  if output == 'json':   # jq -r would print the raw string
    (row,) = json.loads(result.stdout)
    assert row['family'] == 'bass?[2J?[31m??'


@pytest.mark.slow
def test_an_error_from_the_server_is_one_printable_line(server, tmp_path):
  hostile = server(hostile_error)
  note = tmp_path / 'note.wav'
  note.write_bytes(wav_bytes(NOTE))
  result = run_client(hostile.port, note)
  assert result.returncode == 1
  assert result.stderr.splitlines() == [
      f'error: TF Serving at 127.0.0.1:{hostile.port}: HTTP 400: model '
      f'?[2J?[31m?? is on fire']


@pytest.mark.slow
def test_a_file_the_decoder_refuses_is_refused_before_any_request(server,
                                                                  tmp_path):
  hostile = server(hostile_names)
  good, junk = tmp_path / 'good.wav', tmp_path / 'junk.mp3'
  good.write_bytes(wav_bytes(NOTE))
  junk.write_bytes(np.random.default_rng(3).bytes(5000))
  result = run_client(hostile.port, good, junk)
  assert result.returncode == 1
  assert result.stderr.splitlines() == [
      f'error: {junk}: not a WAV, FLAC, OGG or MP3 file']
  assert hostile.requests == 0


class _Servicer(prediction_service_pb2_grpc.PredictionServiceServicer):
  """Answers every Predict with `rows` rows of a thousand classes."""

  def __init__(self, rows, delay=0.0):
    self._rows, self._delay = rows, delay

  def Predict(self, request, context):
    time.sleep(self._delay)
    response = predict_pb2.PredictResponse()
    classes = np.array([[f'family_{i:04d}' * 4 for i in range(1000)]] *
                       self._rows, dtype=object)
    response.outputs[signatures.CLASSES].CopyFrom(
        tf.make_tensor_proto(classes))
    response.outputs[signatures.PROBABILITIES].CopyFrom(
        tf.make_tensor_proto(np.full(classes.shape, 1e-3, np.float32)))
    return response


@pytest.fixture
def grpc_server():
  servers = []

  def start(servicer):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2),
                         options=[('grpc.max_send_message_length', 2**30)])
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        servicer, server)
    port = server.add_insecure_port('127.0.0.1:0')
    server.start()
    servers.append(server)
    return port
  yield start
  for server in servers:
    server.stop(None)


def test_grpc_replies_are_bounded_in_size_and_time(grpc_server):
  # 50 rows of a thousand 48-byte names for one note: 2.5 MB, beyond what
  # one row may take.
  port = grpc_server(_Servicer(rows=50))
  with pytest.raises(tf_serving.ServerError, match='is larger than 1114112 '
                     'bytes, more than an answer to this request can be'):
    tf_serving.predict_grpc('127.0.0.1', port, 'm', [wav_bytes(NOTE)])
  slow = grpc_server(_Servicer(rows=1, delay=5.0))
  start = time.monotonic()
  with pytest.raises(tf_serving.ServerError, match='DEADLINE_EXCEEDED'):
    tf_serving.predict_grpc('127.0.0.1', slow, 'm', [wav_bytes(NOTE)], timeout=1)
  assert time.monotonic() - start < 3
