"""The process's stderr (file descriptor 2) sent nowhere for a while.

What native libraries print (XLA's start-up lines, libmpg123's notes on
damaged MP3 data) bypasses Python's logging and sys.stderr; only redirecting
the descriptor reaches it. While it lasts every thread's stderr is lost too,
so callers wrap the shortest span that prints.
"""

import contextlib
import os
import sys
import threading
from collections.abc import Iterator

# Two redirections at once would each save the other's /dev/null and one
# would restore it for good: one at a time, nested ones in the same thread.
_LOCK = threading.RLock()


@contextlib.contextmanager
def discarded() -> Iterator[None]:
  """While inside, writes to file descriptor 2 go to /dev/null."""
  with _LOCK:
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    try:
      yield
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
