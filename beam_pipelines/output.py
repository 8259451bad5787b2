"""The job's output directory: claimed, staged, committed, never over-deleted.

* One run at a time: the job holds a lock on --output_dir for its whole run
  (`nsynth_contracts.directory_lock`); a second run refuses, naming the first.
* Complete or nothing: the pipeline writes into a hidden staging directory
  inside the output directory. Only after it has finished are the files moved
  into place, the manifest last, so a reader that finds manifest.json finds a
  whole dataset. A failed run leaves the output directory as it was, and a
  run killed before it could clean up has its staging removed by the next.
* Nothing of the user's is lost: --overwrite replaces exactly the files the
  previous run's manifest lists (its `files`), and no other file. A file the
  new dataset would land on that the previous run did not write, or a
  manifest.json this job cannot read, makes the job refuse before it starts
  deleting anything.
"""

import contextlib
import logging
import os
import posixpath
import re
import shutil
import tempfile
import uuid

from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems

from nsynth_contracts import directory_lock
from nsynth_contracts import manifest as manifest_lib

DEAD_LETTERS_DIR = 'dead_letters'
DEAD_LETTERS_PREFIX = 'dead_letters'
STAGING_PREFIX = '.staging-'
# The files a run of this job writes, and so the only ones a manifest may
# list for --overwrite to replace.
_LISTED_NAME = re.compile(
    r'[a-z][a-z0-9_]*-\d{5}-of-\d{5}\.tfrecord(?:\.gz)?'
    r'|dead_letters/dead_letters-\d{5}-of-\d{5}\.jsonl'
    r'|dataset_info\.json|features\.json|label\.labels\.txt')
_STAGING_NAME = re.compile(r'\.staging-[0-9a-f]{12}/?')
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


def _is_local(path: str) -> bool:
  return not directory_lock.is_remote(path)


def list_names(directory: str) -> list[str]:
  """Names directly inside `directory` (sub-directories end with '/')."""
  if _is_local(directory):
    try:
      with os.scandir(directory) as entries:
        return sorted(e.name + ('/' if e.is_dir() else '') for e in entries)
    except FileNotFoundError:
      return []
  try:
    matched = FileSystems.match([posixpath.join(escape_pattern(directory),
                                                '*')])[0].metadata_list
  except BeamIOError:
    return []  # Some filesystems (GCS) raise when nothing matches.
  return sorted(posixpath.relpath(m.path, directory) for m in matched)


def _user_names(directory: str) -> list[str]:
  """What is in the directory apart from this job's lock and staging."""
  return [n for n in list_names(directory)
          if n != directory_lock.LOCK_FILE and not _STAGING_NAME.fullmatch(n)]


@contextlib.contextmanager
def claimed(output_dir: str):
  """Creates `output_dir` if needed and holds its lock while inside.

  Raises:
    OutputDirError: the directory cannot be created or written (one line
      naming it), or another run holds it.
  """
  if not _is_local(output_dir):
    if has_pattern_characters(output_dir):
      raise OutputDirError(
          f'--output_dir {output_dir}: Beam\'s file sinks read *, ? and [ as '
          f'patterns on remote file systems; choose a path without them')
    try:
      if not FileSystems.exists(output_dir):
        FileSystems.mkdirs(output_dir)
    except (BeamIOError, OSError) as e:
      raise OutputDirError(f'--output_dir {output_dir} cannot be created: '
                           f'{e}') from None
  with directory_lock.claimed(output_dir, '--output_dir', OutputDirError):
    yield


def remove_stale_staging(output_dir: str) -> list[str]:
  """Removes staging directories left by killed runs (call it holding the
  lock: no live run can own them then). Returns what was removed."""
  removed = []
  for name in list_names(output_dir):
    if _STAGING_NAME.fullmatch(name):
      path = posixpath.join(output_dir, name.rstrip('/'))
      logging.warning('Removing %s, the staging directory of an earlier run '
                      'that did not finish.', path)
      discard(path)
      removed.append(path)
  return removed


def previous_dataset(output_dir: str, overwrite: bool) -> list[str]:
  """The files of the dataset that --overwrite may replace, manifest first.

  Raises:
    OutputDirNotEmptyError: the directory holds files and overwrite is off.
    OutputDirError: its manifest.json is not one this job can read, or lists
      a file no run of this job writes: nothing is deleted then.
  """
  existing = _user_names(output_dir)
  if not existing:
    return []
  if not overwrite:
    raise OutputDirNotEmptyError(
        f'--output_dir {output_dir} is not empty ({len(existing)} entries, '
        f'e.g. {existing[0].rstrip("/")}); pass --overwrite to replace the '
        f'dataset a previous run wrote there')
  if manifest_lib.MANIFEST_FILENAME not in existing:
    return []  # Nothing of ours: new files go beside the user's.
  path = manifest_lib.manifest_path(output_dir)
  try:
    with FileSystems.open(path) as f:
      files = manifest_lib.listed_files(f.read())
  except (ValueError, OSError, BeamIOError, RecursionError) as e:
    raise OutputDirError(
        f'--output_dir {output_dir} holds a manifest.json this job cannot '
        f'read ({e}); it is left alone: move it away or choose another '
        f'--output_dir') from None
  for name in files:
    listed = posixpath.join(output_dir, name)
    if not _LISTED_NAME.fullmatch(name) or (
        _is_local(listed) and os.path.lexists(listed)
        and not (os.path.isfile(listed) and not os.path.islink(listed))):
      raise OutputDirError(
          f'{path} lists {name!r}, which is not a file this job writes; '
          f'nothing was deleted: move the directory\'s contents away or '
          f'choose another --output_dir')
  return [path] + [posixpath.join(output_dir, name) for name in files]


def new_staging_dir(output_dir: str) -> str:
  staging = posixpath.join(output_dir, STAGING_PREFIX + uuid.uuid4().hex[:12])
  FileSystems.mkdirs(staging)
  return staging


@contextlib.contextmanager
def pattern_free_path(staging_dir: str):
  """A path to `staging_dir` without *, ? or [ in it, for Beam's sinks.

  Beam's file sinks turn their output prefix into a glob to find and move
  what they wrote, so a prefix such as `data[1]/train` finds nothing and the
  write fails. Locally, a link from a temporary directory gives the sinks an
  equivalent path with no pattern characters.
  """
  if not has_pattern_characters(staging_dir):
    yield staging_dir
    return
  alias_dir = tempfile.mkdtemp(prefix='nsynth-staging-')
  alias = os.path.join(alias_dir, 'staging')
  os.symlink(os.path.abspath(staging_dir), alias)
  try:
    yield alias
  finally:
    shutil.rmtree(alias_dir, ignore_errors=True)


def delete(path: str) -> None:
  """Deletes a file or a directory tree (Beam's delete would read the path
  as a pattern)."""
  if _is_local(path):
    if os.path.isdir(path) and not os.path.islink(path):
      shutil.rmtree(path)
    else:
      os.remove(path)
  else:
    FileSystems.delete([escape_pattern(path)])


def discard(staging_dir: str) -> None:
  if FileSystems.exists(staging_dir):
    delete(staging_dir)


def final_name(staged_name: str) -> str:
  """Where a staged file goes, relative to the output directory."""
  if staged_name.startswith(DEAD_LETTERS_PREFIX):
    return posixpath.join(DEAD_LETTERS_DIR, staged_name)
  return staged_name


def staged_files(staging_dir: str) -> list[str]:
  """Names of the files the pipeline wrote into staging (Beam's own hidden
  temporary directories excluded)."""
  return [n for n in list_names(staging_dir)
          if not n.endswith('/') and not n.startswith('.')]


def commit(staging_dir: str, output_dir: str, previous: list[str]) -> list[str]:
  """Moves the staged dataset into output_dir, replacing `previous`.

  Checks first that no staged file would land on a file of the user's, or
  under a path that is not a directory. The previous dataset is moved aside
  (into the staging directory), not deleted, until the new one is in place:
  if a move fails, the previous dataset is put back. The old manifest goes
  first and the new one comes last, so at no moment does a manifest describe
  files that are not all there.

  Returns:
    The final paths of the committed files.

  Raises:
    OutputDirError: a new file would replace one the previous run did not
      write, or cannot be moved into place; the output directory is then
      as it was.
  """
  manifest_name = manifest_lib.MANIFEST_FILENAME
  staged = sorted(staged_files(staging_dir), key=lambda n: n == manifest_name)
  if not staged or staged[-1] != manifest_name:
    raise RuntimeError(f'The pipeline wrote no manifest into {staging_dir}')
  finals = [posixpath.join(output_dir, final_name(n)) for n in staged]
  replaceable = set(previous)
  dead_letters_dir = posixpath.join(output_dir, DEAD_LETTERS_DIR)
  if _is_local(output_dir) and os.path.lexists(dead_letters_dir) and not (
      os.path.isdir(dead_letters_dir)):
    raise OutputDirError(
        f'{dead_letters_dir} exists and is not a directory, so the dead '
        f'letters cannot go there; move it or choose another --output_dir. '
        f'Nothing was changed.')
  for path in finals:
    if path not in replaceable and FileSystems.exists(path):
      raise OutputDirError(
          f'{path} exists and was not written by the previous run of this '
          f'job, so it is not replaced; move it or choose another '
          f'--output_dir. Nothing was changed.')
  aside = posixpath.join(staging_dir, '.replaced')
  moved_aside, moved_in = [], []
  try:
    for path in previous:
      if FileSystems.exists(path):
        target = posixpath.join(aside, posixpath.relpath(path, output_dir))
        if not FileSystems.exists(posixpath.dirname(target)):
          FileSystems.mkdirs(posixpath.dirname(target))
        FileSystems.rename([path], [target])
        moved_aside.append((path, target))
    if any(posixpath.dirname(f) == dead_letters_dir for f in finals) and (
        not FileSystems.exists(dead_letters_dir)):
      FileSystems.mkdirs(dead_letters_dir)
    for name, destination in zip(staged, finals):
      FileSystems.rename([posixpath.join(staging_dir, name)], [destination])
      moved_in.append(destination)
  except (OSError, BeamIOError) as e:
    for destination in moved_in:   # Take the new files out again...
      with contextlib.suppress(OSError, BeamIOError):
        delete(destination)
    for path, target in moved_aside:  # ...and put the old ones back.
      with contextlib.suppress(OSError, BeamIOError):
        FileSystems.rename([target], [path])
    raise OutputDirError(f'cannot move the new dataset into {output_dir} '
                         f'({e}); it was left as it was') from None
  if not any(posixpath.dirname(f) == dead_letters_dir for f in finals) and (
      _is_local(output_dir)):
    with contextlib.suppress(OSError):  # Only if the user left nothing there.
      os.rmdir(dead_letters_dir)
  discard(staging_dir)
  return finals
