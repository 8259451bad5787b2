"""Versions of a dataset: write-once directories, the newest complete one read.

Each run of the Beam job writes a new directory `<output_dir>/<version>/`
and never changes it after; its `manifest.json`, written last, marks it
complete (the layout of TFDS's `<data_dir>/<name>/<version>/` and of TF
Serving's `<base>/<version>/`). This needs neither a directory rename nor a
lock, which object stores such as GCS do not have: a reader never sees half
a dataset, because it only opens a version whose manifest exists (a file
written whole), and two runs never write into one directory.

A version's name is the UTC time its run started, then random hex, so names
sort by start and no two runs pick the same one without asking anyone
(`20261205-134012-3fa9c1`). Readers take the newest complete version.
"""

import datetime
import posixpath
import re
import secrets

from nsynth_contracts import manifest as manifest_lib

_VERSION_NAME = re.compile(r'\d{8}-\d{6}-[0-9a-f]{6}')


def is_version_name(name: str) -> bool:
  return bool(_VERSION_NAME.fullmatch(name.rstrip('/')))


def new_version_name(now: datetime.datetime | None = None) -> str:
  now = now or datetime.datetime.now(datetime.timezone.utc)
  return f'{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}'


def newest_first(names: list[str]) -> list[str]:
  """The version names among `names` (directory entries), newest first."""
  return sorted((n.rstrip('/') for n in names if is_version_name(n)),
                reverse=True)


def resolve_data_dir(data_dir: str) -> str:
  """The directory that holds the dataset a reader of `data_dir` means:
  `data_dir` itself when its manifest is there (a version, or a dataset
  written before versions), else its newest complete version. Local or
  gs:// (TensorFlow's file systems).

  Raises:
    manifest_lib.ManifestError: naming `data_dir`, when it holds neither.
  """
  import tensorflow as tf
  if tf.io.gfile.exists(manifest_lib.manifest_path(data_dir)):
    return data_dir
  if not tf.io.gfile.exists(data_dir):
    if is_version_name(posixpath.basename(data_dir.rstrip('/'))):
      raise manifest_lib.ManifestError(
          f'{data_dir} does not exist: the dataset version was deleted (a '
          f'later nsynth-tfrecords --overwrite replaces older versions); '
          f'pass --data_dir={posixpath.dirname(data_dir.rstrip("/"))} for '
          f'the newest')
    raise manifest_lib.ManifestError(
        f'{data_dir} does not exist: is it the --output_dir of a finished '
        f'nsynth-tfrecords run?')
  try:
    names = tf.io.gfile.listdir(data_dir)
  except tf.errors.OpError:
    names = []
  versions = newest_first(names)
  for name in versions:
    version_dir = posixpath.join(data_dir, name)
    if tf.io.gfile.exists(manifest_lib.manifest_path(version_dir)):
      return version_dir
  unfinished = (f' ({len(versions)} unfinished '
                f'version{"s" if len(versions) > 1 else ""}: runs killed or '
                f'still running)' if versions else '')
  raise manifest_lib.ManifestError(
      f'{data_dir} holds no complete dataset{unfinished}: is it the '
      f'--output_dir of a finished nsynth-tfrecords run?')
