"""The job's output directory: each run adds a version and never changes it.

* A run writes only into a new directory of its own, `<output_dir>/<version>/`
  (`nsynth_contracts.dataset_versions`), its manifest.json last. A reader
  takes the newest version whose manifest exists, so it never sees half a
  dataset, and two runs on one directory never write into one place. No
  directory is renamed and nothing is locked, so this holds on gs:// as on
  a local disk (the manifest, one file, is written whole on either).
* A run that fails deletes its own version. A killed run leaves its version
  unfinished: readers skip it, and later runs name it but never touch it
  (they cannot tell it from a run still writing).
* --overwrite: once the new version is complete, the older complete datasets
  are deleted, each manifest first (so no reader takes a dataset being
  emptied), then exactly the files it lists and nothing else: a file of the
  user's is never deleted. Without it, a directory that holds a complete
  dataset is refused before any work.
"""

import contextlib
import dataclasses
import logging
import os
import posixpath

from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems

from beam_pipelines import output
from nsynth_contracts import dataset_versions
from nsynth_contracts import manifest as manifest_lib


@dataclasses.dataclass(frozen=True)
class Dataset:
  """A complete dataset already in the output directory."""
  directory: str
  files: tuple[str, ...]    # as its manifest lists them, relative to it


@dataclasses.dataclass(frozen=True)
class NewVersion:
  """The version a run writes, and what it will replace once complete."""
  output_dir: str
  directory: str
  replaces: tuple[Dataset, ...]
  unfinished: tuple[str, ...]   # versions of runs killed, or still running

  def unfinished_line(self) -> str | None:
    if not self.unfinished:
      return None
    count = len(self.unfinished)
    return (f'{count} unfinished version{"s" if count > 1 else ""} in '
            f'{self.output_dir} (runs killed, or still running; readers '
            f'skip them): {", ".join(self.unfinished)}. They are left '
            f'alone: remove them once no run writes there.')


def start(output_dir: str, overwrite: bool) -> NewVersion:
  """Creates this run's version directory, after checking that the older
  datasets --overwrite would replace can be read.

  Raises:
    output.OutputDirNotEmptyError: a complete dataset is there and
      overwrite is off.
    output.OutputDirError: the directory cannot be used, or holds a
      manifest this job cannot read or that lists foreign paths (nothing is
      created then).
  """
  _create(output_dir)
  names = output.list_names(output_dir)
  # A dataset written before versions lies in the directory itself.
  candidates = ([output_dir] if manifest_lib.MANIFEST_FILENAME in names
                else []) + [posixpath.join(output_dir, name) for name in
                            dataset_versions.newest_first(names)]
  complete = [d for d in candidates
              if FileSystems.exists(manifest_lib.manifest_path(d))]
  unfinished = tuple(d for d in candidates if d not in complete)
  if complete and not overwrite:
    raise output.OutputDirNotEmptyError(
        f'--output_dir {output_dir} holds the dataset {complete[0]}; pass '
        f'--overwrite to write a new version and then delete the older ones')
  replaces = tuple(_listed_dataset(d) for d in complete)
  directory = posixpath.join(output_dir,
                             dataset_versions.new_version_name())
  try:
    if output.is_local(directory):
      os.makedirs(directory)   # exist_ok=False: never another run's.
    else:
      FileSystems.mkdirs(directory)
  except (OSError, BeamIOError) as e:
    raise output.OutputDirError(f'--output_dir {output_dir} cannot be '
                                f'written: {output.reason(e)}') from None
  return NewVersion(output_dir, directory, replaces, unfinished)


def _create(output_dir: str) -> None:
  if not output.is_local(output_dir) and output.has_pattern_characters(
      output_dir):
    raise output.OutputDirError(
        f'--output_dir {output_dir}: Beam\'s file sinks read *, ? and [ as '
        f'patterns on remote file systems; choose a path without them')
  if output.is_local(output_dir) and os.path.lexists(output_dir) and (
      not os.path.isdir(output_dir)):
    raise output.OutputDirError(f'--output_dir {output_dir} exists and is '
                                f'not a directory')
  try:
    if not FileSystems.exists(output_dir):
      FileSystems.mkdirs(output_dir)
  except (OSError, BeamIOError) as e:
    raise output.OutputDirError(f'--output_dir {output_dir} cannot be '
                                f'created: {output.reason(e)}') from None


def _listed_dataset(directory: str) -> Dataset:
  """The dataset in `directory` as its manifest lists it, each name checked
  to be one this job writes (so that --overwrite deletes nothing else)."""
  path = manifest_lib.manifest_path(directory)
  try:
    with FileSystems.open(path) as f:
      files = manifest_lib.listed_files(f.read())
  except (ValueError, OSError, BeamIOError, RecursionError) as e:
    raise output.OutputDirError(
        f'{path} is a manifest.json this job cannot read ({e}); it is left '
        f'alone: move it away or choose another --output_dir') from None
  for name in files:
    listed = posixpath.join(directory, name)
    if not output.is_job_file_name(name) or (
        output.is_local(listed) and os.path.lexists(listed)
        and not (os.path.isfile(listed) and not os.path.islink(listed))):
      raise output.OutputDirError(
          f'{path} lists {name!r}, which is not a file this job writes; '
          f'nothing was deleted: move the directory\'s contents away or '
          f'choose another --output_dir')
  return Dataset(directory, tuple(files))


def replace_older(version: NewVersion) -> list[str]:
  """Deletes the datasets the new, complete version replaces. Returns a
  line per dataset deleted.

  Raises:
    output.OutputDirError: a file could not be deleted; the message says
      the new version is complete, and where.
  """
  said = []
  for dataset in version.replaces:
    try:
      # Each path may be gone already: another run replacing the same
      # dataset deleted it first.
      for path in [manifest_lib.manifest_path(dataset.directory)] + [
          posixpath.join(dataset.directory, name) for name in dataset.files]:
        if FileSystems.exists(path):
          with contextlib.suppress(FileNotFoundError):
            output.delete(path)
    except (OSError, BeamIOError) as e:
      raise output.OutputDirError(
          f'the new dataset {version.directory} is complete, but deleting '
          f'the one it replaces, {dataset.directory}, failed '
          f'({output.reason(e)}); readers take the new one') from None
    output.remove_if_empty(posixpath.join(dataset.directory,
                                          output.DEAD_LETTERS_DIR))
    if dataset.directory != version.output_dir:
      output.remove_if_empty(dataset.directory)
    said.append(f'Deleted the dataset it replaces, {dataset.directory} '
                f'({len(dataset.files) + 1} files)')
  return said


def abandon(version: NewVersion) -> None:
  """Deletes the version of a run that failed: only this run wrote it."""
  try:
    output.delete(version.directory)
  except (OSError, BeamIOError) as e:
    logging.warning('Could not delete %s, the unfinished version of this '
                    'run (%s); readers skip it.', version.directory,
                    output.reason(e))
