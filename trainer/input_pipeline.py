"""tf.data input pipeline over the Beam job's TFRecords.

Everything comes from manifest.json: shard patterns, the MFCC shape, the
label vocabulary. The records are parsed with the shared schema module, a
whole batch per parse_example call.
"""

from __future__ import annotations

import posixpath

import tensorflow as tf

from nsynth_contracts import manifest as manifest_lib
from nsynth_contracts import schema

AUTOTUNE = tf.data.AUTOTUNE


class DataError(ValueError):
  """The data cannot be trained on; the message names the file or split."""


def split_files(data_dir: str, manifest: manifest_lib.Manifest,
                split: str) -> list[str]:
  """The shards of one split, checked against the manifest.

  Raises:
    DataError: the split is unknown, empty, or has no shards on disk.
  """
  where = manifest_lib.manifest_path(data_dir)
  if split not in manifest.splits:
    raise DataError(f'Split {split!r} is not in {where}; it has '
                    f'{sorted(manifest.splits)}')
  summary = manifest.splits[split]
  if summary.num_examples == 0:
    raise DataError(f'Split {split!r} in {where} has no examples')
  files = sorted(tf.io.gfile.glob(posixpath.join(data_dir,
                                                 summary.file_pattern)))
  if not files:
    raise DataError(f'No shards match {posixpath.join(data_dir, summary.file_pattern)}'
                    f' although {where} lists {summary.num_examples} examples '
                    f'for split {split!r}')
  return files


def validate_split(files: list[str], manifest: manifest_lib.Manifest,
                   split: str) -> int:
  """Reads every record once: schema, shape and label ids, per file.

  Returns:
    The number of records.

  Raises:
    DataError: naming the file whose records disagree with the manifest.
  """
  frames, coefficients = manifest.mfcc_shape
  num_classes = manifest.vocabulary.num_classes
  light_spec = {schema.LABEL: tf.io.FixedLenFeature([], tf.int64),
                schema.MFCC_SHAPE: tf.io.FixedLenFeature([2], tf.int64)}
  full_spec = schema.feature_spec(manifest.mfcc_shape, manifest.audio_samples)
  total = 0
  for path in files:
    records = tf.data.TFRecordDataset(path, compression_type='GZIP')
    try:
      for first in records.take(1):
        tf.io.parse_single_example(first, full_spec)
      for batch in records.batch(4096):
        parsed = tf.io.parse_example(batch, light_spec)
        labels = parsed[schema.LABEL].numpy()
        shapes = parsed[schema.MFCC_SHAPE].numpy()
        bad = (labels < 0) | (labels >= num_classes)
        if bad.any():
          raise DataError(
              f'{path}: label id {int(labels[bad][0])} is outside the '
              f'vocabulary [0, {num_classes}) of the manifest')
        if (shapes != [frames, coefficients]).any():
          raise DataError(f'{path}: mfcc_shape {shapes[0].tolist()} disagrees '
                          f'with the manifest\'s {[frames, coefficients]}')
        total += len(labels)
    except tf.errors.OpError as e:
      raise DataError(f'{path}: records do not match the manifest\'s schema: '
                      f'{e.message.splitlines()[0]}') from e
  expected = manifest.splits[split].num_examples
  if total != expected:
    raise DataError(f'Split {split!r}: {len(files)} shards hold {total} '
                    f'records but the manifest says {expected}')
  return total


def make_dataset(files: list[str], manifest: manifest_lib.Manifest,
                 batch_size: int, *, shuffle: bool = False, seed: int = 0,
                 shuffle_buffer: int = 10_000, cache: bool = False,
                 drop_remainder: bool = False,
                 num_examples: int | None = None) -> tf.data.Dataset:
  """(mfcc float32 [B, frames, coefficients], one-hot float32 [B, classes]).

  Shards are read in parallel (interleave), optionally cached as serialized
  records, shuffled with a seeded buffer, batched, parsed a batch at a time
  with one parse_example call, and prefetched.
  """
  num_classes = manifest.vocabulary.num_classes
  dataset = tf.data.Dataset.from_tensor_slices(files)
  if shuffle:
    dataset = dataset.shuffle(len(files), seed=seed)
  dataset = dataset.interleave(
      lambda path: tf.data.TFRecordDataset(path, compression_type='GZIP'),
      cycle_length=min(len(files), 8), num_parallel_calls=AUTOTUNE,
      deterministic=True)
  if cache:
    dataset = dataset.cache()
  if shuffle:
    dataset = dataset.shuffle(shuffle_buffer, seed=seed,
                              reshuffle_each_iteration=True)
  dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
  if num_examples is not None:
    # The manifest knows the count: Keras then knows an epoch's length.
    batches = (num_examples // batch_size if drop_remainder
               else -(-num_examples // batch_size))
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(batches))

  def to_inputs(serialized):
    parsed = schema.parse_batch(serialized, manifest.mfcc_shape,
                                manifest.audio_samples)
    labels = tf.one_hot(parsed[schema.LABEL], num_classes)
    return parsed[schema.MFCC], labels

  return dataset.map(to_inputs, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)
