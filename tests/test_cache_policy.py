"""Where the trainer keeps its records, decided from the manifest alone.

Each case takes the real manifest of a small dataset and makes it declare
NSynth's size (or more), so the decision is tested without that much data.
"""

import dataclasses
import os
import shutil

import numpy as np
import pytest

from nsynth_contracts import manifest as manifest_lib
from trainer import cache_policy

GB = 10**9


def declaring(manifest, train_records):
  """The manifest, with a train split of `train_records` records."""
  splits = dict(manifest.splits)
  splits['train'] = dataclasses.replace(splits['train'],
                                        num_examples=train_records)
  return dataclasses.replace(manifest, splits=splits)


@pytest.fixture(scope='module')
def manifest(default_tfrecords):
  """The default records: 128 MFCCs and the default representation."""
  return manifest_lib.read(str(default_tfrecords))


def test_a_record_costs_what_its_shapes_say(manifest):
  frames, coefficients = manifest.mfcc_shape
  assert cache_policy.record_bytes(manifest) == 512 + 4 * (
      frames * coefficients + sum(manifest.representation_sizes.values()))


@pytest.mark.parametrize('train_records,memory,disk,compression,where', [
    (4_000, 8 * GB, 100 * GB, manifest_lib.GZIP, cache_policy.MEMORY),
    # NSynth's train split on a 24 GB machine with 16 GB available.
    (289_205, 16 * GB, 100 * GB, manifest_lib.GZIP, cache_policy.DISK),
    (289_205, 16 * GB, 1 * GB, manifest_lib.GZIP, cache_policy.NONE),
    (289_205, 16 * GB, None, manifest_lib.GZIP, cache_policy.NONE),
    (289_205, 16 * GB, 100 * GB, manifest_lib.NO_COMPRESSION,
     cache_policy.NONE),
    # At the boundaries: three quarters of the memory is more than half of
    # it; a disk with 10% more room than the records is too tight.
    ('0.75 memory', 8 * GB, 100 * GB, manifest_lib.GZIP, cache_policy.DISK),
    ('1.1 disk', 1 * GB, '1.1 disk', manifest_lib.GZIP, cache_policy.NONE),
    ('1.3 disk', 1 * GB, '1.3 disk', manifest_lib.GZIP, cache_policy.DISK),
])
def test_auto_keeps_in_memory_only_what_fits_half_of_it(
    manifest, train_records, memory, disk, compression, where):
  record = cache_policy.record_bytes(manifest)
  valid = manifest.splits['valid'].num_examples
  if isinstance(train_records, str):   # a share of the memory, in records
    share = float(train_records.split()[0])
    train_records = int(share * memory / record) - valid
  if isinstance(disk, str):            # a multiple of what is cached
    disk = int(float(disk.split()[0]) * record * (train_records + valid))
  big = dataclasses.replace(declaring(manifest, train_records),
                            compression=compression)
  choice = cache_policy.choose(cache_policy.AUTO, big, ('train', 'valid'),
                               memory, disk)
  assert choice.where == where
  assert choice.bytes_needed == cache_policy.record_bytes(big) * (
      train_records + big.splits['valid'].num_examples)
  if where == cache_policy.MEMORY:
    assert choice.bytes_needed <= 0.5 * memory
  assert '\n' not in choice.describe()


def test_this_machine_would_not_hold_a_split_larger_than_its_memory(
    manifest):
  available = cache_policy.available_memory_bytes()
  assert available > 0
  records = 2 * available // cache_policy.record_bytes(manifest) + 1
  choice = cache_policy.choose(cache_policy.AUTO, declaring(manifest, records),
                               ('train',), available, None)
  assert choice.where == cache_policy.NONE
  assert 'would not fit' in choice.describe()


def test_an_explicit_choice_is_kept(manifest):
  for where in (cache_policy.MEMORY, cache_policy.DISK, cache_policy.NONE):
    assert cache_policy.choose(where, declaring(manifest, 10**9), ('train',),
                               GB, GB).where == where
  with pytest.raises(ValueError, match='not one of'):
    cache_policy.choose('ram', manifest, ('train',), GB, GB)


def test_a_disk_cache_trains_the_same_and_leaves_nothing_behind(
    tiny_tfrecords, tmp_path):
  from trainer import job_layout
  from trainer import train
  def first_epoch(cache):
    job_dir = tmp_path / cache
    train.train(train.TrainConfig(
        data_dir=str(tiny_tfrecords), job_dir=str(job_dir), model='stats_mlp',
        epochs=2, batch_size=16, seed=1, cache=cache))
    assert not (job_dir / job_layout.CACHE_DIR).exists()
    return (job_dir / 'history.csv').read_text().splitlines()[:2]
  # Later epochs differ: a cache keeps the first epoch's order of shards,
  # which otherwise is reshuffled every epoch.
  assert first_epoch(cache_policy.DISK) == first_epoch(cache_policy.NONE)


def test_a_disk_cache_is_read_instead_of_the_shards(tiny_tfrecords,
                                                    tmp_path):
  from trainer import input_pipeline
  data = tmp_path / 'data'
  shutil.copytree(tiny_tfrecords, data)
  manifest = manifest_lib.read(str(data))
  files = input_pipeline.split_files(str(data), manifest, 'valid')
  cache_file = str(tmp_path / 'cache' / 'valid')
  (tmp_path / 'cache').mkdir()
  dataset = input_pipeline.make_dataset(files, manifest, 16, cache='disk',
                                        cache_file=cache_file)
  def labels():
    return np.concatenate([one_hot.numpy().argmax(1)
                           for _, one_hot in dataset])
  first = labels()
  assert os.path.exists(cache_file + '.index')
  for path in files:   # the second pass can only come from the cache
    os.remove(path)
  np.testing.assert_array_equal(labels(), first)
  with pytest.raises(ValueError, match='cache_file'):
    input_pipeline.make_dataset(files, manifest, 16, cache='disk')
