"""The Beam job's progress while it runs: counted by the workers, shown by
the launcher.

Each worker of the local engine (a thread, or a process in
multi_processing mode) counts the notes it has featurised and sends its
running total, at most twice a second, as a UDP datagram to the launcher on
127.0.0.1. Totals are cumulative per worker, so a datagram lost loses
nothing. The launcher shows notes done of the notes to featurise, notes/s
and time left (tqdm's figures): in place on a terminal, as a plain line every
PLAIN_LINE_SECONDS when the output is a file or a pipe. On other runners the
workers send nothing (the runner's own UI shows progress) and the job is not
slowed.
"""

import contextlib
import dataclasses
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator

import tqdm

# Between plain progress lines when the output is not a terminal.
PLAIN_LINE_SECONDS = 10.0
# A stage that ends sooner says nothing, so that a refused input stays a
# one-line error.
STAGE_QUIET_SECONDS = 2.0
# The most often a worker sends its total.
_SEND_SECONDS = 0.5
_DATAGRAM_BYTES = 64


@dataclasses.dataclass(frozen=True)
class Address:
  """Where the launcher listens; travels pickled with the DoFns."""
  host: str
  port: int


class WorkerCounter:
  """A worker's running total of notes done, sent to the launcher."""

  def __init__(self, address: Address | None):
    self._address = address
    # Named on first send: every unpickled copy of the DoFn (a thread's, a
    # process's) is a worker of its own, with a total of its own.
    self._worker = None
    self._count = 0
    self._sent_at = 0.0
    self._socket = None

  def add(self, notes: int) -> None:
    self._count += notes
    if self._address and time.monotonic() - self._sent_at >= _SEND_SECONDS:
      self.send()

  def send(self) -> None:
    """Sends the total now (a lost or refused datagram is only news lost)."""
    if not self._address:
      return
    if self._socket is None:
      self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
      self._worker = uuid.uuid4().hex[:12]
    with contextlib.suppress(OSError):
      self._socket.sendto(f'{self._worker} {self._count}'.encode(),
                          (self._address.host, self._address.port))
    self._sent_at = time.monotonic()

  def __getstate__(self):
    # A socket does not pickle, and a copy counts apart from the original:
    # each opens its own socket, under its own name, from zero.
    return {**self.__dict__, '_socket': None, '_worker': None, '_count': 0,
            '_sent_at': 0.0}


class Display:
  """Receives the workers' totals and shows their sum against `total`."""

  def __init__(self, total: int, description: str, unit: str = ' notes',
               stream=None):
    self._total = total
    self._description = description
    self._unit = unit
    self._stream = stream or sys.stderr
    self._counts = {}
    self._lock = threading.Lock()
    self._stopped = threading.Event()
    self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    self._socket.bind(('127.0.0.1', 0))
    self._socket.settimeout(0.2)
    self.address = Address(*self._socket.getsockname())
    self._started = time.monotonic()
    self._threads = [threading.Thread(target=self._receive, daemon=True),
                     threading.Thread(target=self._show, daemon=True)]

  @property
  def done(self) -> int:
    with self._lock:
      return sum(self._counts.values())

  def _receive(self) -> None:
    while not self._stopped.is_set():
      try:
        data = self._socket.recv(_DATAGRAM_BYTES)
      except TimeoutError:
        continue
      except OSError:
        return
      self._count(data)

  def _count(self, datagram: bytes) -> None:
    try:
      worker, count = datagram.decode().split()
      count = int(count)
    except ValueError:
      return  # Not one of ours.
    with self._lock:
      self._counts[worker] = max(count, self._counts.get(worker, 0))

  def _line(self) -> str:
    return tqdm.tqdm.format_meter(
        min(self.done, self._total), self._total,
        time.monotonic() - self._started, prefix=self._description,
        unit=self._unit, ncols=0)

  def _show(self) -> None:
    if self._stream.isatty():
      bar = tqdm.tqdm(total=self._total, desc=self._description,
                      unit=self._unit, file=self._stream, leave=False)
      with bar:
        while not self._stopped.wait(0.5):
          bar.update(min(self.done, self._total) - bar.n)
      return
    while not self._stopped.wait(PLAIN_LINE_SECONDS):
      print(self._line(), file=self._stream, flush=True)

  def __enter__(self) -> 'Display':
    for thread in self._threads:
      thread.start()
    return self

  def __exit__(self, error_type, *_) -> None:
    self._stopped.set()
    for thread in self._threads:
      thread.join()
    if error_type is None and not self._stream.isatty():
      # The workers' last totals (sent as each bundle finished) may have
      # come after the last line: a finished job ends on its whole count.
      self._socket.setblocking(False)
      with contextlib.suppress(OSError):
        while True:
          self._count(self._socket.recv(_DATAGRAM_BYTES))
      print(self._line(), file=self._stream, flush=True)
    self._socket.close()


@contextlib.contextmanager
def shown(total: int, description: str, local: bool,
          stream=None, unit: str = ' notes') -> Iterator[Address | None]:
  """While inside, the progress of `total` notes is shown, if the job runs
  locally; yields the address workers send to (None: they send nothing)."""
  if not local:
    yield None
    return
  with Display(total, description, unit=unit, stream=stream) as display:
    yield display.address


@contextlib.contextmanager
def said_if_slow(say, text: str,
                 after_seconds: float = STAGE_QUIET_SECONDS) -> Iterator[None]:
  """Says `text` if the stage inside has not ended after `after_seconds`."""
  timer = threading.Timer(after_seconds, say, (text,))
  timer.daemon = True
  timer.start()
  try:
    yield
  finally:
    timer.cancel()
