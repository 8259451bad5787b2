"""The job's output directory: claimed, staged, committed, never over-deleted.

* One run at a time: the job holds a lock on --output_dir for its whole run
  (`nsynth_contracts.directory_lock`); a second run refuses, naming the first.
* Complete or nothing: the pipeline writes into a hidden staging directory
  inside the output directory. Only after it has finished are the files moved
  into place (`beam_pipelines.commit`), the manifest last, so a reader that
  finds manifest.json finds a whole dataset. A failed run leaves the output
  directory as it was, and a run killed before its commit began has its
  staging removed by the next. A staging directory that holds a commit plan
  or files of a previous dataset is never removed here: it may hold the
  only copy of a complete dataset, and `commit.recover` finishes it.
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
# Inside a staging directory, beside the staged dataset: the plan of its
# commit, and the previous dataset's files while they are being replaced.
COMMIT_PLAN = '.commit.json'
REPLACED_DIR = '.replaced'
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


def is_staging_name(name: str) -> bool:
  """Whether an entry of the output directory is a staging directory."""
  return bool(_STAGING_NAME.fullmatch(name))


def is_job_file_name(name: str) -> bool:
  """Whether `name` (relative to the output directory, or as staged) is a
  file a run of this job writes; never a path that leaves the directory."""
  return bool(_LISTED_NAME.fullmatch(name) or
              _LISTED_NAME.fullmatch(final_name(name)))


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
                                                '*')])[0].metadata_list
  except BeamIOError:
    return []  # Some filesystems (GCS) raise when nothing matches.
  return sorted(posixpath.relpath(m.path, directory) for m in matched)


def _user_names(directory: str) -> list[str]:
  """What is in the directory apart from this job's lock and staging."""
  return [n for n in list_names(directory)
          if n != directory_lock.LOCK_FILE and not is_staging_name(n)]


@contextlib.contextmanager
def claimed(output_dir: str):
  """Creates `output_dir` if needed and holds its lock while inside.

  Raises:
    OutputDirError: the directory cannot be created or written (one line
      naming it), or another run holds it.
  """
  if not is_local(output_dir):
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
  """Removes staging directories left by runs killed before their commit
  (call it holding the lock, after `commit.recover`: no live run can own
  them then). Returns what was removed."""
  removed = []
  for name in list_names(output_dir):
    if is_staging_name(name) and not holds_commit(
        posixpath.join(output_dir, name.rstrip('/'))):
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
        is_local(listed) and os.path.lexists(listed)
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
  if is_local(path):
    if os.path.isdir(path) and not os.path.islink(path):
      shutil.rmtree(path)
    else:
      os.remove(path)
  else:
    FileSystems.delete([escape_pattern(path)])


def holds_replaced_files(staging_dir: str) -> bool:
  """Whether files of a previous dataset wait in the staging directory."""
  return bool(files_under(posixpath.join(staging_dir, REPLACED_DIR)))


def holds_commit(staging_dir: str) -> bool:
  """Whether a staging directory is in the middle of a commit: it may hold
  the only copy of a complete dataset (the new one, or the previous)."""
  return (FileSystems.exists(posixpath.join(staging_dir, COMMIT_PLAN)) or
          holds_replaced_files(staging_dir))


def discard(staging_dir: str) -> None:
  """Removes a staging directory, unless it is in the middle of a commit
  (then only `commit.recover` may finish it)."""
  if not FileSystems.exists(staging_dir):
    return
  if holds_commit(staging_dir):
    logging.warning('Keeping %s: it holds an unfinished commit, which the '
                    'next run on its directory completes or undoes.',
                    staging_dir)
    return
  delete(staging_dir)


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
