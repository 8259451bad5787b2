"""Files of the job's output directory, local or remote (Beam's file systems).

What a run writes where, and the guarantees, are in
`beam_pipelines.versioned_output`; these are the file operations it needs,
done so that a path is never read as a pattern.
"""

import contextlib
import os
import posixpath
import re
import shutil
import tempfile

from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems

from nsynth_contracts import directory_lock

DEAD_LETTERS_DIR = 'dead_letters'
DEAD_LETTERS_PREFIX = 'dead_letters'
# The files a run of this job writes, and so the only ones a manifest may
# list for --overwrite to replace.
_LISTED_NAME = re.compile(
    r'[a-z][a-z0-9_]*-\d{5}-of-\d{5}\.tfrecord(?:\.gz)?'
    r'|dead_letters/dead_letters-\d{5}-of-\d{5}\.jsonl'
    r'|dataset_info\.json|features\.json|label\.labels\.txt')
# The pipeline's manifest, before it is completed with the files written
# and the accounting is checked: hidden, so that no reader takes it.
MANIFEST_DRAFT = '.manifest-draft.json'
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


def is_local(path: str) -> bool:
  return not directory_lock.is_remote(path)


def is_job_file_name(name: str) -> bool:
  """Whether `name` (relative to a dataset's directory) is a file a run of
  this job writes; never a path that leaves the directory."""
  return bool(_LISTED_NAME.fullmatch(name))


def list_names(directory: str) -> list[str]:
  """Names directly inside `directory` (sub-directories end with '/')."""
  if is_local(directory):
    try:
      with os.scandir(directory) as entries:
        return sorted(e.name + ('/' if e.is_dir() else '') for e in entries)
    except FileNotFoundError:
      return []
  try:
    matched = FileSystems.match([posixpath.join(escape_pattern(directory),
                                                '**')])[0].metadata_list
  except BeamIOError:
    return []  # Some filesystems (GCS) raise when nothing matches.
  # An object store has objects, not directories: a directory is the first
  # part of the names of the objects below it.
  names = set()
  for matched_path in matched:
    top, below, _ = posixpath.relpath(matched_path.path,
                                      directory).partition('/')
    names.add(top + below)
  return sorted(names)


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


def delete(path: str) -> None:
  """Deletes a file or a directory tree (Beam's delete would read the path
  as a pattern; an object store's directory is the objects under it)."""
  if is_local(path):
    if os.path.isdir(path) and not os.path.islink(path):
      shutil.rmtree(path)
    else:
      os.remove(path)
  elif FileSystems.exists(path):
    FileSystems.delete([escape_pattern(path)])
  else:
    under = [posixpath.join(path, name) for name in files_under(path)]
    if under:
      FileSystems.delete([escape_pattern(p) for p in under])


def files_under(directory: str) -> list[str]:
  """Every file below `directory`, as paths relative to it (none if it does
  not exist)."""
  if is_local(directory):
    return sorted(
        os.path.relpath(os.path.join(root, name), directory)
        for root, _, names in os.walk(directory) for name in names)
  try:
    matched = FileSystems.match([posixpath.join(escape_pattern(directory),
                                                '**')])[0].metadata_list
  except BeamIOError:
    return []
  return sorted(posixpath.relpath(m.path, directory) for m in matched)


def remove_if_empty(directory: str) -> None:
  """Removes a local directory the job made, if nothing is left in it (a
  user's file there keeps it)."""
  if is_local(directory):
    with contextlib.suppress(OSError):
      os.rmdir(directory)


def reason(error: BaseException) -> str:
  """An OSError's or BeamIOError's words, without Beam's wrapping."""
  if isinstance(error, BeamIOError) and getattr(error, 'exception_details',
                                                None):
    error = next(iter(error.exception_details.values()))
  if isinstance(error, OSError) and error.strerror:
    return error.strerror
  return str(error) or type(error).__name__
