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
(`20261205-134012-3fa9c1`). `find` is the one answer to "which versions are
complete", for the Beam job (which writes them) and every reader (which takes
the newest); it lists one level, and locally a link is never a version.

A directory that holds a manifest.json itself is a dataset too: a version
passed directly, or a dataset written before versions (in --output_dir
itself). Readers take it, but never over a complete version beside it, which
is newer; the Beam job's --overwrite replaces such a pre-versions dataset
until release BEFORE_VERSIONS_REPLACED_UNTIL, and refuses it from then on.
"""

import dataclasses
import datetime
import posixpath
import re
import secrets

import nsynth_contracts
from nsynth_common import storage
from nsynth_contracts import manifest as manifest_lib

_VERSION_NAME = re.compile(r'\d{8}-\d{6}-[0-9a-f]{6}')
# The first release whose Beam job no longer replaces a dataset written
# before versions in --output_dir (it refuses it, saying how to move it).
BEFORE_VERSIONS_REPLACED_UNTIL = (0, 2, 0)


def is_version_name(name: str) -> bool:
  return bool(_VERSION_NAME.fullmatch(name.rstrip('/')))


def new_version_name(now: datetime.datetime | None = None) -> str:
  now = now or datetime.datetime.now(datetime.timezone.utc)
  return f'{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}'


def replaces_before_versions(release: str = nsynth_contracts.__version__
                             ) -> bool:
  """Whether this release's --overwrite still replaces a dataset written
  before versions."""
  numbers = tuple(int(part) for part in re.findall(r'\d+', release)[:3])
  return numbers < BEFORE_VERSIONS_REPLACED_UNTIL


@dataclasses.dataclass(frozen=True)
class Versions:
  """A dataset directory's versions, as one listing of it shows them."""
  directory: str
  complete: tuple[str, ...]      # version directories with a manifest,
                                 # newest first
  incomplete: tuple[str, ...]    # version directories without one
  links: tuple[str, ...]         # not directories, though named like
                                 # versions (locally: links); never read
  before_versions: bool          # a manifest.json in the directory itself

  @property
  def datasets(self) -> tuple[str, ...]:
    """Every complete dataset, newest first: the versions, then one written
    before versions (which is older than any)."""
    return self.complete + ((self.directory,) if self.before_versions
                            else ())


def find(directory: str, files: storage.Listing | None = None) -> Versions:
  """The versions in `directory`, listing one level of it.

  Args:
    files: how to list it (default: storage.listing_for(directory)).
  """
  files = files or storage.listing_for(directory)
  complete, incomplete, links, before = [], [], [], False
  listed = files.entries(directory, only=lambda name: (
      name == manifest_lib.MANIFEST_FILENAME or is_version_name(name)))
  for entry in reversed(listed):
    path = posixpath.join(directory, entry.name)
    if entry.name == manifest_lib.MANIFEST_FILENAME:
      before = entry.kind is storage.Kind.FILE
    elif not is_version_name(entry.name):
      continue
    elif entry.kind is not storage.Kind.DIRECTORY:
      links.append(path)
    elif files.is_file(manifest_lib.manifest_path(path)):
      complete.append(path)
    else:
      incomplete.append(path)
  return Versions(directory, tuple(complete), tuple(incomplete), tuple(links),
                  before)


def resolve_data_dir(data_dir: str) -> str:
  """The directory that holds the dataset a reader of `data_dir` means: its
  newest complete version, else `data_dir` itself when its manifest is there
  (a version, or a dataset written before versions). Local or remote
  (TensorFlow's file systems).

  Raises:
    manifest_lib.ManifestError: naming `data_dir`, when it holds neither.
  """
  versions = find(data_dir)
  if versions.datasets:
    return versions.datasets[0]
  if not storage.listing_for(data_dir).exists(data_dir):
    if is_version_name(posixpath.basename(data_dir.rstrip('/'))):
      raise manifest_lib.ManifestError(
          f'{data_dir} does not exist: the dataset version was deleted (a '
          f'later nsynth-tfrecords --overwrite replaces older versions); '
          f'pass --data_dir={posixpath.dirname(data_dir.rstrip("/"))} for '
          f'the newest')
    raise manifest_lib.ManifestError(
        f'{data_dir} does not exist: is it the --output_dir of a finished '
        f'nsynth-tfrecords run?')
  count = len(versions.incomplete)
  unfinished = (f' ({count} unfinished version{"s" if count > 1 else ""}: '
                f'runs killed or still running)' if count else '')
  raise manifest_lib.ManifestError(
      f'{data_dir} holds no complete dataset{unfinished}: is it the '
      f'--output_dir of a finished nsynth-tfrecords run?')
