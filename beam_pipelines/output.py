"""Making the job's output appear complete or not at all.

The pipeline writes into a hidden staging directory inside the output
directory. Only after it has finished are the files moved into place, the
manifest last, so a reader that finds manifest.json finds a whole dataset.
A failed run leaves the output directory as it was.
"""

from __future__ import annotations

import logging
import posixpath
import uuid

from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems

from nsynth_contracts import manifest as manifest_lib

DEAD_LETTERS_DIR = 'dead_letters'
DEAD_LETTERS_PREFIX = 'dead_letters'
_STAGING_PREFIX = '.staging-'


class OutputDirNotEmptyError(RuntimeError):
  pass


def _entries(directory: str) -> list[str]:
  """Paths directly inside a directory (hidden names excluded)."""
  try:
    return [m.path for m in FileSystems.match(
        [posixpath.join(directory, '*')])[0].metadata_list]
  except BeamIOError:
    return []  # Some filesystems (GCS) raise when nothing matches.


def check_output_dir(output_dir: str, overwrite: bool) -> None:
  """Refuses a non-empty output directory unless overwrite is set."""
  existing = _entries(output_dir)
  if existing and not overwrite:
    raise OutputDirNotEmptyError(
        f'--output_dir {output_dir} is not empty ({len(existing)} entries, e.g. '
        f'{posixpath.basename(existing[0].rstrip("/"))}); pass --overwrite to '
        f'replace its dataset')


def new_staging_dir(output_dir: str) -> str:
  staging = posixpath.join(output_dir, _STAGING_PREFIX + uuid.uuid4().hex[:12])
  FileSystems.mkdirs(staging)
  return staging


def discard(staging_dir: str) -> None:
  if FileSystems.exists(staging_dir):
    FileSystems.delete([staging_dir])


def _final_path(output_dir: str, staged_path: str) -> str:
  name = posixpath.basename(staged_path)
  if name.startswith(DEAD_LETTERS_PREFIX):
    return posixpath.join(output_dir, DEAD_LETTERS_DIR, name)
  return posixpath.join(output_dir, name)


def _previous_dataset(output_dir: str) -> list[str]:
  """What an earlier run of this job left in output_dir, manifest first."""
  ours = []
  manifest = posixpath.join(output_dir, manifest_lib.MANIFEST_FILENAME)
  if FileSystems.exists(manifest):
    ours.append(manifest)
  ours += [p for p in _entries(output_dir)
           if p.endswith(manifest_lib.SHARD_SUFFIX)]
  dead_letters = posixpath.join(output_dir, DEAD_LETTERS_DIR)
  if FileSystems.exists(dead_letters):
    ours.append(dead_letters)
  return ours


def commit(staging_dir: str, output_dir: str) -> list[str]:
  """Moves the staged dataset into output_dir, replacing an earlier one.

  The old manifest goes first and the new one comes last, so at no moment
  does a manifest describe files that are not all there.

  Returns:
    The final paths of the committed files.
  """
  for path in _previous_dataset(output_dir):
    logging.info('Replacing %s', path)
    FileSystems.delete([path])
  staged = _entries(staging_dir)
  manifest_name = manifest_lib.MANIFEST_FILENAME
  staged.sort(key=lambda p: posixpath.basename(p) == manifest_name)
  if not staged or posixpath.basename(staged[-1]) != manifest_name:
    raise RuntimeError(f'The pipeline wrote no manifest into {staging_dir}')
  finals = [_final_path(output_dir, p) for p in staged]
  dead_letters_dir = posixpath.join(output_dir, DEAD_LETTERS_DIR)
  if (any(posixpath.dirname(f) == dead_letters_dir for f in finals) and
      not FileSystems.exists(dead_letters_dir)):
    FileSystems.mkdirs(dead_letters_dir)
  for source, destination in zip(staged, finals):
    FileSystems.rename([source], [destination])
  discard(staging_dir)
  return finals
