"""tf.data input pipeline over the Beam job's TFRecords.

Everything comes from manifest.json: the shard files of each split, their
compression, the MFCC shape, the label vocabulary. The records are parsed
with the shared schema module, a whole batch per parse_example call. A
record whose label is outside the vocabulary stops the pipeline with an
error naming its file: it must never be trained on or counted as class 0.
"""

import posixpath
import re

import tensorflow as tf

from nsynth_contracts import manifest as manifest_lib
from nsynth_contracts import schema

AUTOTUNE = tf.data.AUTOTUNE
_LABEL_OUTSIDE = 'a label id outside the vocabulary of the manifest, in'


class DataError(ValueError):
  """The data cannot be trained on; the message names the file or split."""


def split_files(data_dir: str, manifest: manifest_lib.Manifest,
                split: str) -> list[str]:
  """The shards of one split, as the manifest lists them.

  Raises:
    DataError: the split is unknown or empty, or a listed shard is missing.
  """
  where = manifest_lib.manifest_path(data_dir)
  if split not in manifest.splits:
    raise DataError(f'Split {split!r} is not in {where}; it has '
                    f'{sorted(manifest.splits)}')
  summary = manifest.splits[split]
  if summary.num_examples == 0:
    raise DataError(f'Split {split!r} in {where} has no examples')
  files = [posixpath.join(data_dir, name)
           for name in manifest.split_files(split)]
  if not files:
    raise DataError(f'{where} lists no shards for split {split!r} although '
                    f'it counts {summary.num_examples} examples')
  for path in files:
    if not tf.io.gfile.exists(path):
      raise DataError(f'{path} is missing: {where} lists it as a shard of '
                      f'split {split!r}')
  return files


def _first_line(error: tf.errors.OpError) -> str:
  return (error.message or type(error).__name__).strip().splitlines()[0]


def validate_split(files: list[str], manifest: manifest_lib.Manifest,
                   split: str) -> int:
  """Reads every record once: integrity, schema, shape and label ids, per file.

  Returns:
    The number of records.

  Raises:
    DataError: naming the file whose records are damaged or disagree with
      the manifest.
  """
  frames, coefficients = manifest.mfcc_shape
  num_classes = manifest.vocabulary.num_classes
  light_spec = {schema.LABEL: tf.io.FixedLenFeature([], tf.int64),
                schema.MFCC_SHAPE: tf.io.FixedLenFeature([2], tf.int64)}
  full_spec = schema.feature_spec(manifest.mfcc_shape, manifest.audio_samples)
  total = 0
  for path in files:
    records = tf.data.TFRecordDataset(
        path, compression_type=manifest.tf_compression_type)
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
    except tf.errors.DataLossError as e:
      raise DataError(f'truncated or corrupted record in {path} '
                      f'({_first_line(e)})') from None
    except tf.errors.OpError as e:
      raise DataError(f'{path}: records do not match the manifest\'s schema: '
                      f'{_first_line(e)}') from None
  expected = manifest.splits[split].num_examples
  if total != expected:
    raise DataError(f'Split {split!r}: {len(files)} shards hold {total} '
                    f'records but the manifest says {expected}')
  return total


def damaged_file(files: list[str], manifest: manifest_lib.Manifest
                 ) -> str | None:
  """The first file that cannot be read to its end, or None.

  For the error path only: when a pipeline fails on damaged data, this
  finds the file to name.
  """
  for path in files:
    try:
      for _ in tf.data.TFRecordDataset(
          path, compression_type=manifest.tf_compression_type).batch(4096):
        pass
    except tf.errors.OpError:
      return path
  return None


def data_error(error: tf.errors.OpError, files: list[str],
               manifest: manifest_lib.Manifest) -> DataError:
  """A DataError in our words for an error raised while reading records."""
  message = error.message or ''
  if _LABEL_OUTSIDE in message:
    where = re.findall(r'\[([^\]]*)\]', message.split(_LABEL_OUTSIDE, 1)[1])
    detail = ', '.join(w.strip() for w in where[:2] if w.strip())
    return DataError(f'{_LABEL_OUTSIDE} {detail} (vocabulary of '
                     f'{manifest.vocabulary.num_classes} families)')
  damaged = damaged_file(files, manifest)
  if damaged:
    return DataError(f'truncated or corrupted record in {damaged} '
                     f'({_first_line(error)})')
  return DataError(f'cannot read the records: {_first_line(error)}')


def make_dataset(files: list[str], manifest: manifest_lib.Manifest,
                 batch_size: int, *, shuffle: bool = False, seed: int = 0,
                 shuffle_buffer: int = 10_000, cache: bool = False,
                 drop_remainder: bool = False,
                 num_examples: int | None = None,
                 with_metadata: bool = False,
                 originals_only: bool = False) -> tf.data.Dataset:
  """(mfcc float32 [B, frames, coefficients], one-hot float32 [B, classes]).

  Shards are read in parallel (interleave), optionally cached as serialized
  records, shuffled with a seeded buffer, batched, parsed a batch at a time
  with one parse_example call, and prefetched. Each record travels with the
  name of its file, so that a bad label can be traced to it.

  Args:
    with_metadata: also yield a third element, {source, pitch, instrument,
      note_str} tensors [B], for sliced evaluation.
    originals_only: leave out the records that are augmented copies.
  """
  num_classes = manifest.vocabulary.num_classes
  compression = manifest.tf_compression_type
  dataset = tf.data.Dataset.from_tensor_slices(files)
  if shuffle:
    dataset = dataset.shuffle(len(files), seed=seed)
  dataset = dataset.interleave(
      lambda path: tf.data.TFRecordDataset(
          path, compression_type=compression).map(lambda r: (r, path)),
      cycle_length=min(len(files), 8), num_parallel_calls=AUTOTUNE,
      deterministic=True)
  if originals_only:
    copy_spec = {schema.AUGMENTATION: tf.io.FixedLenFeature(
        [], tf.int64, default_value=0)}
    dataset = dataset.filter(lambda record, _: tf.equal(
        tf.io.parse_single_example(record, copy_spec)[schema.AUGMENTATION],
        0))
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

  def to_inputs(serialized, paths):
    parsed = schema.parse_batch(serialized, manifest.mfcc_shape,
                                manifest.audio_samples)
    labels = parsed[schema.LABEL]
    inside = (labels >= 0) & (labels < num_classes)
    check = tf.debugging.Assert(
        tf.reduce_all(inside),
        [_LABEL_OUTSIDE, tf.boolean_mask(paths, ~inside)[:1],
         'label id', tf.boolean_mask(labels, ~inside)[:1]], summarize=1)
    with tf.control_dependencies([check]):
      one_hot = tf.one_hot(labels, num_classes)
    if with_metadata:
      return parsed[schema.MFCC], one_hot, {
          key: parsed[key] for key in (schema.SOURCE, schema.PITCH,
                                       schema.INSTRUMENT, schema.NOTE_STR)}
    return parsed[schema.MFCC], one_hot

  return dataset.map(to_inputs, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)
