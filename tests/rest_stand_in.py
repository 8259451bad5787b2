"""What the tests' stand-ins for TF Serving's REST API share: a local HTTP
server, and TF Serving's columnar JSON for inputs and outputs."""

import base64
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from http.server import HTTPServer

import numpy as np
import tensorflow as tf


class LocalHttpServer:
  """An HTTP server on a free local port that answers every POST with
  `reply(path, request body) -> (status, reply body)`; `close()` stops it."""

  def __init__(self, reply: Callable[[str, bytes], tuple[int, bytes]]):
    class Handler(BaseHTTPRequestHandler):
      def do_POST(self):
        code, data = reply(self.path, self.rfile.read(
            int(self.headers['Content-Length'])))
        self.send_response(code)
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

      def log_message(self, *args):
        pass

    self.server = HTTPServer(('127.0.0.1', 0), Handler)
    self.port = self.server.server_port
    threading.Thread(target=self.server.serve_forever, daemon=True).start()

  def close(self):
    self.server.shutdown()
    self.server.server_close()


def decoded_b64(value):
  """A {"b64": ...} input, or a list of them, as bytes."""
  if isinstance(value, dict):
    return base64.b64decode(value['b64'])
  return [base64.b64decode(v['b64']) for v in value]


def columnar_outputs(outputs) -> dict:
  """A signature's output tensors as TF Serving's JSON lists (strings as
  text)."""
  return {k: (np.asarray(v.numpy()).astype(str).tolist()
              if v.dtype == tf.string else v.numpy().tolist())
          for k, v in outputs.items()}
