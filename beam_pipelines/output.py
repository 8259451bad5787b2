"""Files of the job's output directory, local or remote: one interface.

What a run writes where, and the guarantees, are in
`beam_pipelines.versioned_output`; these are the file operations it needs,
`files_for(path)` choosing once between the local disk (never through a
link: nsynth_common.storage) and Beam's file systems (gs:// through
beam_pipelines.gcs: one-level listing, bounded retries). A path is never
read as a pattern.
"""

import contextlib
import os
import posixpath
import re
import shutil
import tempfile
import uuid
from typing import Protocol

from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems

from beam_pipelines import gcs
from beam_pipelines import tfds_metadata
from nsynth_common import storage

DEAD_LETTERS_DIR = 'dead_letters'
DEAD_LETTERS_PREFIX = 'dead_letters'
# The files a run of this job writes, and so the only ones a manifest may
# list for --overwrite to replace.
_LISTED_NAME = re.compile(
    r'[a-z][a-z0-9_]*-\d{5}-of-\d{5}\.tfrecord(?:\.gz)?'
    r'|dead_letters/dead_letters-\d{5}-of-\d{5}\.jsonl|' +
    '|'.join(re.escape(name) for name in tfds_metadata.FILE_NAMES))
# The pipeline's manifest, before it is completed with the files written
# and the accounting is checked: hidden, so that no reader takes it.
MANIFEST_DRAFT = '.manifest-draft.json'
# What a run leaves in its version while it writes: the draft, a manifest
# being written under a hidden name, Beam's temporary directories.
_WORK_NAME = re.compile(re.escape(MANIFEST_DRAFT) +
                        r'|\.manifest\.json\.[0-9a-f]+\.tmp|beam-temp-.*')
_PATTERN_CHARACTERS = re.compile(r'([*?[])')


class OutputDirError(RuntimeError):
  """The output directory cannot be used; the message names it and why."""


class OutputDirNotEmptyError(OutputDirError):
  pass


def escape_pattern(path: str) -> str:
  """`path` as a Beam/fnmatch pattern that matches only itself."""
  return _PATTERN_CHARACTERS.sub(r'[\1]', path)


def has_pattern_characters(path: str) -> bool:
  return bool(_PATTERN_CHARACTERS.search(path))


def sinks_read_as_pattern(path: str) -> bool:
  """Whether Beam's file sinks would read `path` as a pattern: one with *, ?
  or [ on a remote file system (locally, pattern_free_path gives them an
  alias without)."""
  return storage.is_remote(path) and has_pattern_characters(path)


def is_job_file_name(name: str) -> bool:
  """Whether `name` (relative to a dataset's directory) is a file a run of
  this job writes; never a path that leaves the directory."""
  return bool(_LISTED_NAME.fullmatch(name))


def is_work_name(name: str) -> bool:
  """Whether `name`, directly in a version, is what a run leaves there
  while it writes (its draft manifest, Beam's temporary files)."""
  return bool(_WORK_NAME.fullmatch(name.rstrip('/')))


class OutputFiles(storage.Listing, Protocol):
  """What the job does to its output directory, local or remote (and the
  files it reads: files_for serves any path the job is given)."""

  def write_whole(self, path: str, data: bytes) -> None:
    """Writes a file that no reader ever sees half-written."""

  def make_dirs(self, path: str, exist_ok: bool = True) -> None:
    """Creates a directory (on an object store, nothing to create)."""

  def not_a_directory(self, path: str) -> str | None:
    """`path` if it exists and is not a directory, or the nearest existing
    path above it if that is not one (make_dirs would fail), else None."""

  def files_under(self, directory: str) -> list[str]:
    """Every file below `directory`, relative to it (none if missing)."""

  def remove_file(self, path: str, inside: str) -> None:
    """Deletes the file `path` below `inside`, never through a link."""

  def links_below(self, path: str, inside: str) -> str | None:
    """The first part of `path` below `inside` that is a link (or not a
    directory where one is needed, not a file at the end), or None."""

  def remove_tree(self, directory: str) -> None:
    """Deletes a directory this run made, and everything in it."""

  def remove_dir_if_empty(self, directory: str) -> None:
    """Removes a local directory if nothing is left in it."""


class _LocalOutput(storage.LocalFiles):
  """The local disk: links are never followed (storage.LocalFiles)."""

  def write_whole(self, path: str, data: bytes) -> None:
    # Under a hidden name, then renamed: atomic on one disk, so a reader
    # never opens half a file, nor finds a truncated one after a kill.
    directory, name = posixpath.split(path)
    hidden = posixpath.join(directory, f'.{name}.{uuid.uuid4().hex[:8]}.tmp')
    try:
      with open(hidden, 'wb') as f:
        f.write(data)
      os.replace(hidden, path)
    finally:
      with contextlib.suppress(FileNotFoundError):
        os.remove(hidden)

  def make_dirs(self, path: str, exist_ok: bool = True) -> None:
    os.makedirs(path, exist_ok=exist_ok)

  def not_a_directory(self, path: str) -> str | None:
    at = path
    while not os.path.lexists(at):
      above = os.path.dirname(at)
      if not above or above == at:
        return None
      at = above
    return None if os.path.isdir(at) else at

  def files_under(self, directory: str) -> list[str]:
    return sorted(
        os.path.relpath(os.path.join(root, name), directory)
        for root, _, names in os.walk(directory) for name in names)

  def remove_tree(self, directory: str) -> None:
    shutil.rmtree(directory)   # removes links inside, never follows them

  def remove_dir_if_empty(self, directory: str) -> None:
    with contextlib.suppress(OSError):
      os.rmdir(directory)


class _RemoteOutput:
  """Beam's file systems; on gs://, the job's own bounded requests."""

  def entries(self, directory: str, only=None) -> list[storage.Entry]:
    if gcs.is_gcs(directory):
      files, directories = gcs.entries(directory)
    else:   # Beam has no one-level listing for other stores.
      files, directories = self._entries_by_match(directory)
    found = [storage.Entry(n, storage.Kind.FILE) for n in files] + [
        storage.Entry(n, storage.Kind.DIRECTORY) for n in directories]
    return sorted((e for e in found if only is None or only(e.name)),
                  key=lambda e: e.name)

  def _entries_by_match(self, directory: str) -> tuple[list[str], list[str]]:
    files, directories = set(), set()
    for name in self.files_under(directory):
      top, below, _ = name.partition('/')
      (directories if below else files).add(top)
    return sorted(files), sorted(directories)

  def exists(self, path: str) -> bool:
    return FileSystems.exists(path)

  def is_file(self, path: str) -> bool:
    return FileSystems.exists(path)

  def read_bytes(self, path: str) -> bytes:
    if gcs.is_gcs(path):
      return gcs.read_bytes(path)
    with FileSystems.open(path) as f:
      return f.read()

  def write_whole(self, path: str, data: bytes) -> None:
    with FileSystems.create(path) as f:   # an object appears whole
      f.write(data)

  def make_dirs(self, path: str, exist_ok: bool = True) -> None:
    if not (exist_ok and FileSystems.exists(path)):
      FileSystems.mkdirs(path)

  def not_a_directory(self, path: str) -> str | None:
    return None   # An object store's directories are parts of names.

  def files_under(self, directory: str) -> list[str]:
    try:
      matched = FileSystems.match([posixpath.join(escape_pattern(directory),
                                                  '**')])[0].metadata_list
    except BeamIOError as e:
      if gcs.unavailable(e):
        raise
      return []  # Some filesystems (GCS) raise when nothing matches.
    return sorted(posixpath.relpath(m.path, directory) for m in matched)

  def remove_file(self, path: str, inside: str) -> None:
    FileSystems.delete([escape_pattern(path)])

  def links_below(self, path: str, inside: str) -> str | None:
    return None   # An object store has no links.

  def remove_tree(self, directory: str) -> None:
    under = [posixpath.join(directory, n) for n in self.files_under(directory)]
    if under:
      FileSystems.delete([escape_pattern(p) for p in under])

  def remove_dir_if_empty(self, directory: str) -> None:
    pass   # An object store's directory goes with its last object.


def files_for(path: str) -> OutputFiles:
  """The file operations for `path`: the local disk's, or Beam's."""
  return _RemoteOutput() if storage.is_remote(path) else _LocalOutput()


@contextlib.contextmanager
def pattern_free_path(directory: str):
  """A path to `directory` without *, ? or [ in it, for Beam's sinks.

  Beam's file sinks turn their output prefix into a glob to find and move
  what they wrote, so a prefix such as `data[1]/train` finds nothing and the
  write fails. Locally, a link from a temporary directory gives the sinks an
  equivalent path with no pattern characters.
  """
  if not has_pattern_characters(directory):
    yield directory
    return
  alias_dir = tempfile.mkdtemp(prefix='nsynth-output-')
  alias = os.path.join(alias_dir, 'version')
  os.symlink(os.path.abspath(directory), alias)
  try:
    yield alias
  finally:
    shutil.rmtree(alias_dir, ignore_errors=True)


def reason(error: BaseException) -> str:
  """An OSError's or BeamIOError's words, without Beam's wrapping."""
  if isinstance(error, BeamIOError) and getattr(error, 'exception_details',
                                                None):
    error = next(iter(error.exception_details.values()))
  if gcs.unavailable(error) and not isinstance(
      error, gcs.StorageUnavailableError):
    return f'the store did not answer ({gcs.reason(error)})'
  if isinstance(error, OSError) and error.strerror:
    return error.strerror
  return str(error) or type(error).__name__
