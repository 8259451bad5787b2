"""One run at a time per output directory: a lock held for the whole run.

The trainer (its --job_dir) and the export (its model directory) take it,
so two runs started on one directory cannot interleave or silently replace
each other's results; the second one refuses, naming the first. The Beam job
needs none: each run writes a version of its own
(beam_pipelines.versioned_output).

The lock is `fcntl.flock` on a hidden file in the directory. The kernel drops
it when its process dies, so a run killed with SIGKILL never leaves a lock
that blocks the next one. Object stores (gs:// and the like) have no lock
and no create-if-absent through tf.io.gfile; there each run writes a claim
object of its own into `.nsynth-runs/`, then lists them: two runs started
together each see the other's claim, so at most one goes on. A killed run's
claim stays until a person removes it, which the refusal says.
"""

import contextlib
import dataclasses
import datetime
import errno
import fcntl
import json
import os
import posixpath
import shlex
import socket
import stat
import sys
import time
import uuid

from nsynth_common import dataclass_json
from nsynth_common.storage import is_remote

LOCK_FILE = '.nsynth-run.lock'
CLAIMS_DIR = '.nsynth-runs'


class DirectoryLockedError(RuntimeError):
  """Another run holds the directory; the message names it."""


@dataclasses.dataclass(frozen=True)
class RunInfo:
  """Who holds a lock: enough for a person to find the other run."""
  pid: int
  host: str
  started: str
  command: str

  @classmethod
  def of_this_process(cls) -> 'RunInfo':
    return cls(pid=os.getpid(), host=socket.gethostname(),
               started=datetime.datetime.now(datetime.timezone.utc)
               .isoformat(timespec='seconds'),
               command=shlex.join([os.path.basename(sys.argv[0])] +
                                  sys.argv[1:])[:300])

  def describe(self) -> str:
    return (f'pid {self.pid} on {self.host}, started {self.started}: '
            f'{self.command}')


class DirectoryLock:
  """Context manager: holds `<directory>/.nsynth-run.lock` while inside.

  Raises (on entry):
    DirectoryLockedError: another live run holds the directory.
    OSError: the directory cannot hold a lock file (read-only, say).
  """

  def __init__(self, directory: str, what: str = 'directory'):
    self._directory = directory
    self._what = what
    self._path = os.path.join(directory, LOCK_FILE)
    self._fd = None
    self._claim = None

  def __enter__(self) -> 'DirectoryLock':
    if is_remote(self._directory):
      self._claim = _claim_remote(self._directory, self._what)
      return self
    while True:
      try:
        # Never through a link: it could point at any file of the user's.
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC |
                     os.O_NOFOLLOW, 0o644)
      except OSError as e:
        if e.errno == errno.ELOOP:
          raise DirectoryLockedError(
              f'{self._what} {self._directory} holds a link named '
              f'{LOCK_FILE}, where this project keeps its lock; remove it '
              f'or choose another {self._what}') from None
        raise
      if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise DirectoryLockedError(
            f'{self._what} {self._directory} holds {LOCK_FILE}, which is '
            f'not a file; remove it or choose another {self._what}')
      try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except OSError as e:
        holder = _read_holder(fd)
        os.close(fd)
        if e.errno not in (errno.EAGAIN, errno.EACCES):
          raise
        raise DirectoryLockedError(
            f'{self._what} {self._directory} is in use by another run ('
            f'{holder}); wait for it to finish or choose another '
            f'{self._what}') from None
      # The run before us may have removed the file between our open and
      # our lock: then we locked a file nobody else will ever see. Retry.
      try:
        same_file = os.stat(self._path).st_ino == os.fstat(fd).st_ino
      except FileNotFoundError:
        same_file = False
      if same_file:
        break
      os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps(dataclass_json.to_json(
        RunInfo.of_this_process())).encode('utf-8'))
    self._fd = fd
    return self

  def __exit__(self, *exc_info) -> None:
    if self._claim is not None:
      _release_remote(self._claim)
      self._claim = None
    if self._fd is None:
      return
    try:
      os.unlink(self._path)  # While still holding it: see the retry above.
    except OSError:
      pass
    os.close(self._fd)
    self._fd = None


def _claim_remote(directory: str, what: str) -> str:
  """Writes this run's claim into a remote directory, then refuses if any
  other claim is there. Returns the claim's path.

  Raises:
    DirectoryLockedError: another claim is there, naming its run and where
      to remove it should that run have been killed.
  """
  import tensorflow as tf  # remote paths are read through TensorFlow here
  claims = posixpath.join(directory, CLAIMS_DIR)
  name = (f'{time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())}-'
          f'{uuid.uuid4().hex[:8]}.json')
  mine = posixpath.join(claims, name)
  tf.io.gfile.makedirs(claims)
  with tf.io.gfile.GFile(mine, 'w') as f:
    f.write(json.dumps(dataclass_json.to_json(RunInfo.of_this_process())))
  others = sorted(n.rstrip('/') for n in tf.io.gfile.listdir(claims)
                  if n.rstrip('/') != name)
  if not others:
    return mine
  _release_remote(mine)
  other = posixpath.join(claims, others[0])
  try:
    with tf.io.gfile.GFile(other) as f:
      holder = dataclass_json.from_json(
          RunInfo, json.loads(f.read()), other).describe()
  except (tf.errors.OpError, ValueError, TypeError):
    holder = 'a run that has not yet said who it is'
  raise DirectoryLockedError(
      f'{what} {directory} is claimed by another run ({holder}); wait for it '
      f'to finish or choose another {what}, or, if that run was killed, '
      f'remove {other}')


def _release_remote(claim: str) -> None:
  import tensorflow as tf
  try:
    tf.io.gfile.remove(claim)
  except tf.errors.NotFoundError:
    pass


def holder(directory: str) -> str | None:
  """Who holds `directory` now (another run, or this process through another
  lock), described; None when nobody does. Reads only: takes no lock a run
  would then find taken, writes no claim."""
  if is_remote(directory):
    import tensorflow as tf
    claims = posixpath.join(directory, CLAIMS_DIR)
    try:
      names = sorted(tf.io.gfile.listdir(claims))
    except tf.errors.NotFoundError:
      return None
    return (f'a run whose claim is {posixpath.join(claims, names[0])}'
            if names else None)
  try:
    fd = os.open(os.path.join(directory, LOCK_FILE),
                 os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
  except OSError:
    return None   # no lock file: no run has it
  try:
    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
  except OSError:
    return _read_holder(fd)
  finally:
    os.close(fd)   # releases the shared lock, if it was taken
  return None


def _read_holder(fd: int) -> str:
  try:
    os.lseek(fd, 0, os.SEEK_SET)
    info = dataclass_json.from_json(
        RunInfo, json.loads(os.read(fd, 4096).decode('utf-8')), LOCK_FILE)
    return info.describe()
  except (OSError, ValueError, TypeError):
    return 'a run that has not yet said who it is'


@contextlib.contextmanager
def claimed(directory: str, what: str, error: type[Exception] = RuntimeError):
  """Creates a local `directory` if needed and holds its lock (a remote
  one's claim) while inside.

  Raises:
    error: naming the directory, when it cannot be created or used, or
      another run holds it.
  """
  lock = DirectoryLock(directory, what)
  try:
    if not is_remote(directory):
      os.makedirs(directory, exist_ok=True)
    lock.__enter__()
  except DirectoryLockedError as e:
    raise error(str(e)) from None
  except OSError as e:
    raise error(f'{what} {directory} cannot be used: '
                f'{e.strerror or e}') from None
  try:
    yield
  finally:
    lock.__exit__(None, None, None)
