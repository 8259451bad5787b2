"""One HTTP POST, bounded in time and in the size of its reply.

A socket timeout bounds each read, not the request: a server that sends a
byte a second never times out, and one that sends an endless chunked reply
fills memory. Here a timer shuts the connection down at the deadline,
whatever phase the request is in (sending, waiting, reading headers or the
body), and the reply is read in chunks counted against a limit.
"""

import http.client
import socket
import threading
import time

_READ_BYTES = 2**16


class RequestError(Exception):
  """The request failed; the message says how, in one line."""


def _connected(host: str, port: int, timeout: float
               ) -> http.client.HTTPConnection:
  """An open connection, or RequestError saying why there is none."""
  where = f'http://{host}:{port}'
  connection = http.client.HTTPConnection(host, port, timeout=timeout)
  try:
    connection.connect()
  except TimeoutError:
    raise RequestError(f'no reply from {where} within {timeout:g} s'
                       ) from None
  except OSError as e:
    connection.close()
    raise RequestError(f'cannot reach {where}: '
                       f'{e.strerror or type(e).__name__}') from None
  return connection


def _body(response: http.client.HTTPResponse, max_reply_bytes: int,
          where: str) -> bytes:
  """The reply body, read in chunks counted against the limit."""
  chunks, size = [], 0
  while chunk := response.read1(_READ_BYTES):
    size += len(chunk)
    if size > max_reply_bytes:
      raise RequestError(f'the reply from {where} is larger than '
                         f'{max_reply_bytes} bytes, more than an answer '
                         f'to this request can be; refused')
    chunks.append(chunk)
  return b''.join(chunks)


def post(host: str, port: int, path: str, body: bytes, timeout: float,
         max_reply_bytes: int,
         content_type: str = 'application/json') -> tuple[int, bytes]:
  """(status, reply body) of a POST to http://host:port/path.

  Args:
    timeout: seconds for the whole request, from connecting to the last
      byte of the reply.
    max_reply_bytes: the most the reply body may hold.

  Raises:
    RequestError: unreachable, no whole reply within `timeout`, a reply
      larger than `max_reply_bytes`, or a broken connection.
  """
  where = f'http://{host}:{port}'
  deadline = time.monotonic() + timeout
  connection = _connected(host, port, timeout)
  # Held here because http.client drops connection.sock once a reply that
  # closes the connection (HTTP/1.0, `Connection: close`) owns the socket;
  # shutting this one down still ends that reply's reads.
  sock = connection.sock
  expired = threading.Event()

  def expire():
    expired.set()
    try:
      sock.shutdown(socket.SHUT_RDWR)
    except OSError:
      pass   # Already closed: the request has ended anyway.

  timer = threading.Timer(max(deadline - time.monotonic(), 0.0), expire)
  timer.start()
  try:
    connection.request('POST', path, body, {'Content-Type': content_type})
    response = connection.getresponse()
    reply = _body(response, max_reply_bytes, where)
    if expired.is_set():
      raise TimeoutError
    if response.length:   # Bytes its Content-Length promised and never came.
      raise RequestError(f'the connection to {where} closed mid-reply, '
                         f'{response.length} bytes before its end')
    return response.status, reply
  except (OSError, http.client.HTTPException) as e:
    if expired.is_set() or isinstance(e, TimeoutError):
      raise RequestError(f'no reply from {where} within {timeout:g} s'
                         ) from None
    if isinstance(e, http.client.IncompleteRead):
      raise RequestError(f'the connection to {where} closed mid-reply'
                         ) from None
    detail = (e.strerror if isinstance(e, OSError) else None) or (
        type(e).__name__)
    raise RequestError(f'the connection to {where} failed: {detail}'
                       ) from None
  finally:
    timer.cancel()
    connection.close()
