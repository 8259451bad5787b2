"""Where the trainer keeps the records it reads every epoch: in memory, in
a cache file on disk, or nowhere (read from the shards each epoch).

The manifest says how many records each split holds and their shapes, so
the decision is made before any record is read. A cache in memory is
fastest and is chosen when the records fit MEMORY_FRACTION of the memory
available. The records the default Beam job keeps of NSynth's training and
validation splits (the MFCCs and the default representations, whatever
their size) take more than half of a 24 GB machine (BUILD_NOTES.md, "NSynth
scale"). Otherwise a cache file on disk, when the shards are compressed
(reading the cache skips the decompression, the input pipeline's ceiling)
and the disk has room; otherwise none: uncompressed shards are already what
a disk cache would be.
"""

import dataclasses
import os
import shutil

from nsynth_contracts import manifest as manifest_lib

AUTO = 'auto'
MEMORY = 'memory'
DISK = 'disk'
NONE = 'none'
CHOICES = (AUTO, MEMORY, DISK, NONE)

# The records may take at most this share of the available memory: the rest
# is the model, TensorFlow's buffers, the shuffle buffer and the machine.
MEMORY_FRACTION = 0.5
# A disk cache needs this much more free space than the records.
DISK_MARGIN = 1.2
# A cached record's bytes beyond its floats: the Example's keys and
# metadata, and the file name each record travels with.
_RECORD_OVERHEAD_BYTES = 512


@dataclasses.dataclass(frozen=True)
class CacheChoice:
  where: str          # MEMORY, DISK or NONE
  bytes_needed: int   # the cached records' size
  reason: str         # for people, one line

  def describe(self) -> str:
    return f'Caching the records {self.where_text}: {self.reason}'

  @property
  def where_text(self) -> str:
    return {MEMORY: 'in memory', DISK: 'on disk',
            NONE: 'nowhere (read from the shards every epoch)'}[self.where]


def record_bytes(manifest: manifest_lib.Manifest) -> int:
  """A serialized record's size as the manifest's shapes give it."""
  frames, coefficients = manifest.mfcc_shape
  floats = (frames * coefficients + (manifest.audio_samples or 0) +
            sum(manifest.representation_sizes.values()))
  return 4 * floats + _RECORD_OVERHEAD_BYTES


def cached_bytes(manifest: manifest_lib.Manifest,
                 splits: tuple[str, ...]) -> int:
  """What caching these splits' records costs."""
  return record_bytes(manifest) * sum(manifest.splits[s].num_examples
                                      for s in splits)


def available_memory_bytes() -> int:
  """Memory a new allocation can have: the kernel's MemAvailable, or less
  under a cgroup (container) limit."""
  available = _meminfo_available()
  limit = _cgroup_room()
  return min(available, limit) if limit is not None else available


def _meminfo_available() -> int:
  try:
    with open('/proc/meminfo', encoding='ascii') as f:
      for line in f:
        if line.startswith('MemAvailable:'):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  return os.sysconf('SC_AVPHYS_PAGES') * os.sysconf('SC_PAGE_SIZE')


def _cgroup_room() -> int | None:
  try:
    with open('/sys/fs/cgroup/memory.max', encoding='ascii') as f:
      limit = f.read().strip()
    with open('/sys/fs/cgroup/memory.current', encoding='ascii') as f:
      used = int(f.read().strip())
  except (OSError, ValueError):
    return None
  return None if limit == 'max' else max(int(limit) - used, 0)


def free_disk_bytes(directory: str) -> int:
  """Free space where a cache file would go (its nearest existing parent)."""
  while directory and not os.path.isdir(directory):
    directory = os.path.dirname(directory.rstrip('/'))
  return shutil.disk_usage(directory or '.').free


def choose(requested: str, manifest: manifest_lib.Manifest,
           splits: tuple[str, ...], memory_bytes: int,
           disk_bytes: int | None) -> CacheChoice:
  """Where to cache `splits` for `requested` (AUTO decides).

  Args:
    memory_bytes: available memory (available_memory_bytes()).
    disk_bytes: free space where a cache file would go, or None when there
      is no local place for one (a gs:// job directory).

  Raises:
    ValueError: an unknown `requested`.
  """
  if requested not in CHOICES:
    raise ValueError(f'cache {requested!r} is not one of {CHOICES}')
  needed = cached_bytes(manifest, splits)
  size = f'{_gb(needed)} of records'
  if requested != AUTO:
    return CacheChoice(requested, needed, f'{size}, as asked')
  if needed <= MEMORY_FRACTION * memory_bytes:
    return CacheChoice(MEMORY, needed, f'{size}, within '
                       f'{MEMORY_FRACTION:.0%} of the {_gb(memory_bytes)} of '
                       f'memory available')
  too_big = (f'{size} would not fit {MEMORY_FRACTION:.0%} of the '
             f'{_gb(memory_bytes)} of memory available')
  if manifest.compression == manifest_lib.NO_COMPRESSION:
    return CacheChoice(NONE, needed, f'{too_big}, and the shards are '
                       f'uncompressed already')
  if disk_bytes is not None and needed * DISK_MARGIN <= disk_bytes:
    return CacheChoice(DISK, needed, f'{too_big}; the disk has '
                       f'{_gb(disk_bytes)} free')
  return CacheChoice(NONE, needed, f'{too_big}, nor the disk\'s '
                     f'{_gb(disk_bytes or 0)} free')


def _gb(size: int) -> str:
  return f'{size / 1e9:.1f} GB'
