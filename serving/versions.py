"""The version directories of an exported model, as TF Serving reads them.

TF Serving serves `<export_base>/<model_name>/<version>/` and loads only
integer versions (it ignores `v1` or `0.1`, and reads `007` as 7); versions
only grow, and an existing one is never overwritten. A version is complete
once its saved_model.pb is there: the export writes it last.
"""

import posixpath
import re

from nsynth_common import storage

SAVED_MODEL = 'saved_model.pb'


def version_dirs(model_dir: str) -> list[tuple[int, str]]:
  """(number, directory name) of each integer version (local or remote),
  oldest first: the name as it is, which may be `007`."""
  files = storage.listing_for(model_dir)
  return sorted(
      (int(entry.name), entry.name) for entry in files.entries(
          model_dir, only=lambda name: bool(re.fullmatch(r'[0-9]+', name)))
      if entry.kind in (storage.Kind.DIRECTORY, storage.Kind.LINK))


def existing_versions(model_dir: str) -> list[int]:
  """Integer version directories (local or gs://), in order."""
  return [number for number, _ in version_dirs(model_dir)]


def next_version(model_dir: str) -> int:
  versions = existing_versions(model_dir)
  return versions[-1] + 1 if versions else 1


def newest_first(model_dir: str) -> tuple[list[str], list[str]]:
  """(the complete versions' directories, newest first; the others, those
  without a saved_model.pb: an export being copied, or one that failed)."""
  complete, incomplete = [], []
  files = storage.listing_for(model_dir)
  for _, name in reversed(version_dirs(model_dir)):
    directory = posixpath.join(model_dir, name)
    (complete if files.is_file(posixpath.join(directory, SAVED_MODEL))
     else incomplete).append(directory)
  return complete, incomplete
