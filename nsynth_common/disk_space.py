"""Recognising a full disk, whichever library was writing when it filled.

A full disk reaches us as Python's `OSError(ENOSPC)` (open, h5py, Beam's
local file system), as TensorFlow's `ResourceExhaustedError` ("<path>; No
space left on device", from tf.io.gfile and checkpoint writers), or wrapped
by Beam in its own exception types that keep only the words. Every command
turns it into one line naming the file, never a traceback: it is the
machine's state, not a bug.
"""

import contextlib
import errno
import os
import re

_WORDS = 'No space left on device'
# TensorFlow's file errors read "<path>; <strerror>"; h5py's hold
# "filename = '<path>'" among its C library's details.
_TF_FILE_ERROR = re.compile(r'^(?P<path>[^;\n]+); ' + re.escape(_WORDS))
_HDF5_FILE_ERROR = re.compile(r"filename = '(?P<path>[^'\n]+)'")


def _chain(error: BaseException | None):
  """`error` and the errors it was raised from or during, each once."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    yield error
    error = error.__cause__ or error.__context__


def is_disk_full(error: BaseException) -> bool:
  """Whether `error`, or one it was raised from, says the disk is full."""
  return any((isinstance(e, OSError) and e.errno == errno.ENOSPC) or
             _WORDS in str(e) for e in _chain(error))


def file_being_written(error: BaseException) -> str | None:
  """The file the full disk refused, when the error names it."""
  for e in _chain(error):
    if isinstance(e, OSError) and e.errno == errno.ENOSPC and e.filename:
      return str(e.filename)
    match = (_TF_FILE_ERROR.match(getattr(e, 'message', None) or str(e)) or
             _HDF5_FILE_ERROR.search(str(e)))
    if match:
      return match['path']
  return None


def describe(error: BaseException) -> str:
  """One line for a user: what filled, and what to do."""
  path = file_being_written(error)
  where = f' while writing {path}' if path else ''
  return (f'the disk is full (no space left on device){where}; free some '
          f'space, or write elsewhere, and run the command again')




@contextlib.contextmanager
def naming(path: str):
  """Inside, a full disk whose error names no file (a write through
  Python's zipfile, as Keras saves a model) is said to be writing `path`."""
  try:
    yield
  except Exception as e:
    if is_disk_full(e) and file_being_written(e) is None:
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path) from e
    raise
