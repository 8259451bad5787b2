"""Which local files are safe to open, before any byte of them is read.

A FIFO or a device could block a reader forever or never end; a link out of
a dataset could point at any file of the machine's. The Beam job, predict
and the client open audio through these functions.
"""

import os
import stat
from typing import BinaryIO

from nsynth_contracts.audio_limits import AudioError

# A recording's file may be larger than a note's, but not without end.
MAX_RECORDING_BYTES = 2**31

_NOT_A_FILE = 'not a regular file (a directory, FIFO or device)'


def _reason(error: OSError) -> str:
  return error.strerror or type(error).__name__


def checked_local_file(path: str, inside: str | None = None,
                       max_bytes: int | None = None) -> tuple[str, int]:
  """(the real path, its size) of a file that is safe to read.

  It must be a regular file, inside `inside` after following links when
  given, and no larger than `max_bytes`.

  Raises:
    AudioError: with a kind and a reason that never quotes the file.
  """
  try:
    os.lstat(path)
  except FileNotFoundError:
    raise AudioError('missing_audio', 'file does not exist') from None
  except (OSError, ValueError) as e:
    raise AudioError('unreadable_audio', _reason(e) if isinstance(e, OSError)
                     else 'not a usable path') from None
  real = os.path.realpath(path)
  if inside is not None:
    root = os.path.realpath(inside)
    if os.path.commonpath([real, root]) != root:
      raise AudioError('outside_dataset', f'a link to a file outside '
                       f'{inside}; links that leave the dataset are not '
                       f'followed')
  try:
    info = os.stat(real)
  except FileNotFoundError:
    raise AudioError('missing_audio', 'a link to a file that does not '
                     'exist') from None
  except OSError as e:
    raise AudioError('unreadable_audio', _reason(e)) from None
  if not stat.S_ISREG(info.st_mode):
    raise AudioError('not_a_file', _NOT_A_FILE)
  if max_bytes is not None and info.st_size > max_bytes:
    raise AudioError('too_large', f'the file is {info.st_size} bytes, more '
                     f'than {max_bytes}')
  return real, info.st_size


def open_local_file(path: str, inside: str | None = None,
                    max_bytes: int | None = None) -> BinaryIO:
  """`path` open for reading, if `checked_local_file` allows it.

  Opened without blocking and checked again once open, so that a file
  swapped for a FIFO after the check is still refused, not waited on.

  Raises:
    AudioError: as checked_local_file.
  """
  real, _ = checked_local_file(path, inside, max_bytes)
  try:
    fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK)
  except OSError as e:
    raise AudioError('unreadable_audio', _reason(e)) from None
  if not stat.S_ISREG(os.fstat(fd).st_mode):
    os.close(fd)
    raise AudioError('not_a_file', _NOT_A_FILE)
  return os.fdopen(fd, 'rb')
