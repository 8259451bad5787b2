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
  user's is never deleted, and nothing is deleted through a link (a version
  that is a link is no version; a link below one is refused). Without it, a
  directory that holds a complete dataset is refused before any work.
* A version is never an output directory: a run never writes into one.
"""

import contextlib
import dataclasses
import logging
import posixpath

from apache_beam.io.filesystem import BeamIOError

from beam_pipelines import gcs
from beam_pipelines import output
from nsynth_common import disk_space
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
  # Versions an --overwrite emptied of its files, that hold files of a
  # person's; and links named like versions. Neither is read or touched.
  kept: tuple[str, ...] = ()
  links: tuple[str, ...] = ()

  def unfinished_line(self) -> str | None:
    """What the output directory holds besides datasets, a line each."""
    lines = []
    if self.unfinished:
      count = len(self.unfinished)
      lines.append(
          f'{count} unfinished version{"s" if count > 1 else ""} in '
          f'{self.output_dir} (runs killed, or still running; readers skip '
          f'them): {", ".join(self.unfinished)}. They are left alone: '
          f'remove them once no run writes there.')
    if self.kept:
      lines.append(f'Replaced versions that still hold files this job did '
                   f'not write (kept, never read): {", ".join(self.kept)}')
    if self.links:
      lines.append(f'Links named like versions (never read, never deleted '
                   f'through): {", ".join(self.links)}')
    return '\n'.join(lines) or None


def check(output_dir: str, overwrite: bool) -> None:
  """Refuses an output directory that start() would refuse, reading only:
  cheap, so the job calls it before it reads its inputs and weights.

  Raises:
    output.OutputDirNotEmptyError, output.OutputDirError: as start().
  """
  _plan(output_dir, overwrite, output.files_for(output_dir))


def start(output_dir: str, overwrite: bool) -> NewVersion:
  """Creates this run's version directory, after checking that the older
  datasets --overwrite would replace can be read.

  Raises:
    output.OutputDirNotEmptyError: a complete dataset is there and
      overwrite is off.
    output.OutputDirError: the directory cannot be used (a version itself,
      not writable), or holds a manifest this job cannot read or that lists
      foreign paths or paths through a link (nothing is created then).
  """
  files = output.files_for(output_dir)
  replaces, found = _plan(output_dir, overwrite, files)
  _create(output_dir, files)
  unfinished = tuple(d for d in found.incomplete if _was_written(d, files))
  directory = posixpath.join(output_dir, dataset_versions.new_version_name())
  try:
    files.make_dirs(directory, exist_ok=False)   # never another run's
  except (OSError, BeamIOError) as e:
    raise output.OutputDirError(f'--output_dir {output_dir} cannot be '
                                f'written: {output.reason(e)}') from None
  return NewVersion(output_dir, directory, replaces, unfinished,
                    tuple(d for d in found.incomplete if d not in unfinished),
                    found.links)


def _plan(output_dir: str, overwrite: bool, files: output.OutputFiles
          ) -> tuple[tuple[Dataset, ...], dataset_versions.Versions]:
  """The datasets a new version would replace, and what the directory
  holds; every refusal that needs no writing."""
  _check_path(output_dir, files)
  found = dataset_versions.find(output_dir, files)
  if found.before_versions and not (
      dataset_versions.replaces_before_versions()):
    raise output.OutputDirError(
        f'--output_dir {output_dir} holds a dataset written before versions '
        f'(its manifest.json in the directory itself), which this release '
        f'no longer replaces: move its files into a version directory, '
        f'{posixpath.join(output_dir, dataset_versions.new_version_name())}'
        f', or choose another --output_dir')
  complete = found.datasets
  if complete and not overwrite:
    raise output.OutputDirNotEmptyError(
        f'--output_dir {output_dir} holds the dataset {complete[0]}; pass '
        f'--overwrite to write a new version and then delete the older ones')
  return tuple(_listed_dataset(output_dir, d, files) for d in complete), found


def _check_path(output_dir: str, files: output.OutputFiles) -> None:
  if dataset_versions.is_version_name(posixpath.basename(output_dir)):
    raise output.OutputDirError(
        f'--output_dir {output_dir} is named as a version of a dataset is, '
        f'and a version never changes after it is written: pass the '
        f'directory that holds the versions, --output_dir='
        f'{posixpath.dirname(output_dir)}, or another name')
  if output.sinks_read_as_pattern(output_dir):
    raise output.OutputDirError(
        f'--output_dir {output_dir}: Beam\'s file sinks read *, ? and [ as '
        f'patterns on remote file systems; choose a path without them')
  blocking = files.not_a_directory(output_dir)
  if blocking == output_dir:
    raise output.OutputDirError(
        f'--output_dir {output_dir} exists and is not a directory')
  if blocking:
    raise output.OutputDirError(f'--output_dir {output_dir} cannot be '
                                f'created: {blocking} is not a directory')


def _create(output_dir: str, files: output.OutputFiles) -> None:
  try:
    files.make_dirs(output_dir)
  except (OSError, BeamIOError) as e:
    what = ('exists and is not a directory' if isinstance(
        e, FileExistsError) else f'cannot be created: {output.reason(e)}')
    raise output.OutputDirError(f'--output_dir {output_dir} {what}') from None


def _was_written(version_dir: str, files: output.OutputFiles) -> bool:
  """Whether a version without a manifest holds what a run writes (or
  nothing yet): a run killed, or still writing. A version an --overwrite
  replaced holds only files of a person's."""
  names = [e.name for e in files.entries(version_dir)]
  dead_letters = (
      [f'{output.DEAD_LETTERS_DIR}/{e.name}' for e in files.entries(
          posixpath.join(version_dir, output.DEAD_LETTERS_DIR))]
      if output.DEAD_LETTERS_DIR in names else [])
  return not names or any(output.is_job_file_name(n) or output.is_work_name(n)
                          for n in names + dead_letters)


def _listed_dataset(output_dir: str, directory: str,
                    files: output.OutputFiles) -> Dataset:
  """The dataset in `directory` as its manifest lists it, each name checked
  to be one this job writes, reached through no link (so that --overwrite
  deletes nothing else)."""
  path = manifest_lib.manifest_path(directory)
  try:
    listed = manifest_lib.listed_files(files.read_bytes(path))
  except (ValueError, OSError, BeamIOError, RecursionError) as e:
    raise output.OutputDirError(
        f'{path} is a manifest.json this job cannot read ({e}); it is left '
        f'alone: move it away or choose another --output_dir') from None
  for name in listed:
    if not output.is_job_file_name(name):
      raise output.OutputDirError(
          f'{path} lists {name!r}, which is not a file this job writes; '
          f'nothing was deleted: move the directory\'s contents away or '
          f'choose another --output_dir')
    link = files.links_below(posixpath.join(directory, name), output_dir)
    if link:
      raise output.OutputDirError(
          f'{path} lists {name!r}, but {link} is a link or not what this job '
          f'writes there; nothing was deleted (nothing is deleted through a '
          f'link): move it away or choose another --output_dir')
  return Dataset(directory, tuple(listed))


def replace_older(version: NewVersion) -> list[str]:
  """Deletes the datasets the new, complete version replaces. Returns a
  line per dataset deleted.

  Raises:
    output.OutputDirError: a file could not be deleted; the message says
      the new version is complete, and where.
  """
  files = output.files_for(version.output_dir)
  said = []
  for dataset in version.replaces:
    try:
      # Each path may be gone already: another run replacing the same
      # dataset deleted it first.
      for path in [manifest_lib.manifest_path(dataset.directory)] + [
          posixpath.join(dataset.directory, name) for name in dataset.files]:
        if files.exists(path):
          with contextlib.suppress(FileNotFoundError):
            files.remove_file(path, version.output_dir)
    except (OSError, BeamIOError) as e:
      raise output.OutputDirError(
          f'the new dataset {version.directory} is complete, but deleting '
          f'the one it replaces, {dataset.directory}, failed '
          f'({output.reason(e)}); readers take the new one') from None
    files.remove_dir_if_empty(posixpath.join(dataset.directory,
                                             output.DEAD_LETTERS_DIR))
    if dataset.directory != version.output_dir:
      files.remove_dir_if_empty(dataset.directory)
    said.append(f'Deleted the dataset it replaces, {dataset.directory} '
                f'({len(dataset.files) + 1} files)')
  return said


def abandon(version: NewVersion) -> str | None:
  """Deletes the version of a run that failed: only this run wrote it.
  Returns None, or a line saying what could not be deleted."""
  try:
    output.files_for(version.directory).remove_tree(version.directory)
  except FileNotFoundError:
    pass
  except (OSError, BeamIOError) as e:
    left = (f'Could not delete {version.directory}, the unfinished version '
            f'of this run ({output.reason(e)}); readers skip it: remove it '
            f'once the storage answers')
    logging.warning('%s', left)
    return left
  return None


def storage_failure(error: Exception, version: NewVersion, left: str | None
                    ) -> output.OutputDirError | None:
  """The one line for a run that failed because its storage did (a full
  disk, an object store that stopped answering), once abandon() has
  returned `left`; None for other errors."""
  kept = ('nothing of it was kept' if left is None else
          f'its unfinished version {version.directory} could not be '
          f'deleted: remove it once the storage answers')
  if disk_space.is_disk_full(error):
    refused = disk_space.file_being_written(error)
    return output.OutputDirError(
        f'--output_dir {version.output_dir}: the disk is full (no space '
        f'left on device) while writing the new dataset'
        + (f' ({refused})' if refused else '') + f'; {kept}, and the older '
        'datasets are untouched')
  if gcs.unavailable(error):
    return output.OutputDirError(
        f'the storage stopped answering while the job ran '
        f'({gcs.describe(error)}); {kept}, and the older datasets in '
        f'--output_dir {version.output_dir} are untouched: run the job '
        f'again once the storage answers')
  return None
