"""The one file-system layer: what a directory holds, local or remote.

Dataset versions and exports are found by listing one directory level and
asking whether a file is there; `--overwrite` deletes files below an output
directory. Each of these has one meaning whatever the storage:

* On a local disk the answers come from the operating system and never
  through a symbolic link: a link named like a version may point at a
  person's archive, and a link below a version at any directory of theirs.
  A link is listed as a link, and deleting through one is refused.
* On an object store (gs://, TensorFlow's ram://) there are no links, and a
  directory is the first part of the names of the objects below it; one
  level is listed with a delimiter, never every object below.

`Listing` is the interface readers and writers of versions need, and readers
of the small files beside them (a manifest, a labels.json). `LocalFiles`
implements it (and deletes) for local paths; the remote side has two
implementations because two clients reach remote stores here: TensorFlow's
file systems (`TensorFlowFiles`: the trainer, the export, predict) and Beam's
(`beam_pipelines.output.files_for`: the Beam job, whose launcher never
imports TensorFlow). `listing_for` picks one for a path.
"""

import dataclasses
import enum
import errno
import os
import posixpath
import stat
from collections.abc import Callable
from typing import Protocol


def is_remote(path: str) -> bool:
  """Whether `path` names an object store or other non-local file system."""
  return '://' in path


class Kind(enum.Enum):
  FILE = 'file'
  DIRECTORY = 'directory'
  LINK = 'link'          # local only: never followed
  OTHER = 'other'        # a FIFO, a device, a socket


@dataclasses.dataclass(frozen=True)
class Entry:
  """One name directly inside a directory."""
  name: str
  kind: Kind


class Listing(Protocol):
  """What readers and writers of versions ask of a directory."""

  def entries(self, directory: str,
              only: Callable[[str], bool] | None = None) -> list[Entry]:
    """The names directly inside `directory` (those `only` keeps), sorted;
    none if it does not exist."""

  def exists(self, path: str) -> bool:
    """Whether anything is at `path` (locally: a link counts)."""

  def is_file(self, path: str) -> bool:
    """Whether `path` is a file (locally: a regular file, not a link)."""

  def read_bytes(self, path: str) -> bytes:
    """The file's bytes (a manifest, a labels.json: small files)."""


class LocalFiles:
  """A local directory, as the operating system shows it, links unfollowed."""

  def entries(self, directory: str,
              only: Callable[[str], bool] | None = None) -> list[Entry]:
    try:
      with os.scandir(directory) as found:
        return sorted((Entry(e.name, _kind(e)) for e in found
                       if only is None or only(e.name)),
                      key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
      return []

  def exists(self, path: str) -> bool:
    return os.path.lexists(path)

  def is_file(self, path: str) -> bool:
    try:
      return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
      return False

  def read_bytes(self, path: str) -> bytes:
    with open(path, 'rb') as f:
      return f.read()

  def remove_file(self, path: str, inside: str) -> None:
    """Deletes the regular file `path`, below the directory `inside`,
    without following a link anywhere between the two.

    Raises:
      FileNotFoundError: it is gone already.
      OSError: a part of the path below `inside` is a link (ELOOP), or
        `path` is not a regular file, or not below `inside` (EINVAL).
    """
    parts = _parts_below(path, inside)
    fd = os.open(inside, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
      for part in parts[:-1]:
        try:
          below = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                          | os.O_CLOEXEC, dir_fd=fd)
        except NotADirectoryError:   # a link to a file, or a file
          raise OSError(errno.ELOOP, 'a part of the path is a link or not a '
                        'directory', path) from None
        os.close(fd)
        fd = below
      mode = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False).st_mode
      if not stat.S_ISREG(mode):
        raise OSError(errno.ELOOP if stat.S_ISLNK(mode) else errno.EISDIR,
                      'not a regular file', path)
      os.unlink(parts[-1], dir_fd=fd)
    finally:
      os.close(fd)

  def links_below(self, path: str, inside: str) -> str | None:
    """The first part of `path` below `inside` that is a link or not what
    the path needs there (a directory, then the file itself), or None."""
    parts = _parts_below(path, inside)
    at = inside
    for i, part in enumerate(parts):
      at = os.path.join(at, part)
      try:
        mode = os.lstat(at).st_mode
      except FileNotFoundError:
        return None
      last = i == len(parts) - 1
      if stat.S_ISLNK(mode) or not (stat.S_ISREG(mode) if last
                                    else stat.S_ISDIR(mode)):
        return at
    return None


def _parts_below(path: str, inside: str) -> list[str]:
  relative = os.path.relpath(path, inside)
  parts = relative.split(os.sep)
  if relative in ('.', '') or parts[0] == '..' or os.path.isabs(relative):
    raise OSError(errno.EINVAL, f'not below {inside}', path)
  return parts


def _kind(entry: os.DirEntry) -> Kind:
  if entry.is_symlink():
    return Kind.LINK
  if entry.is_dir(follow_symlinks=False):
    return Kind.DIRECTORY
  if entry.is_file(follow_symlinks=False):
    return Kind.FILE
  return Kind.OTHER


class TensorFlowFiles:
  """A remote directory through TensorFlow's file systems (gs://, ram://).

  `tf.io.gfile.listdir` lists one level (on GCS with a delimiter); a name
  ending in '/' is a directory. TensorFlow's in-memory file system lists by
  name prefix and without the '/', so the names `only` keeps are asked
  about.
  """

  def entries(self, directory: str,
              only: Callable[[str], bool] | None = None) -> list[Entry]:
    import tensorflow as tf
    try:
      names = tf.io.gfile.listdir(directory)
    except tf.errors.NotFoundError:
      return []
    found = {}
    for name in names:
      bare = name.rstrip('/')
      if only is not None and not only(bare):
        continue
      path = posixpath.join(directory, bare)
      if name.endswith('/') or tf.io.gfile.isdir(path):
        found[bare] = Kind.DIRECTORY
      elif tf.io.gfile.exists(path):
        found[bare] = Kind.FILE
    return [Entry(name, kind) for name, kind in sorted(found.items())]

  def exists(self, path: str) -> bool:
    import tensorflow as tf
    return tf.io.gfile.exists(path)

  def is_file(self, path: str) -> bool:
    import tensorflow as tf
    return tf.io.gfile.exists(path) and not tf.io.gfile.isdir(path)

  def read_bytes(self, path: str) -> bytes:
    import tensorflow as tf
    with tf.io.gfile.GFile(path, 'rb') as f:
      return f.read()


def listing_for(path: str,
                remote: Callable[[], Listing] = TensorFlowFiles) -> Listing:
  """The Listing for `path`: LocalFiles for a local path, else `remote()`
  (TensorFlow's file systems unless the caller reads through another)."""
  return remote() if is_remote(path) else LocalFiles()
