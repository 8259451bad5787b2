"""tf.data input pipeline over the Beam job's TFRecords.

Everything comes from manifest.json: the shard files of each split, their
compression, the MFCC shape, the label vocabulary. The records are parsed
with the shared schema module, a whole batch per parse_example call. A
record whose label is outside the vocabulary stops the pipeline with an
error naming its file: it must never be trained on or counted as class 0.
trainer.data_checks reads every record once, to name a bad one.
"""

import posixpath

import tensorflow as tf

from nsynth_contracts import manifest as manifest_lib
from nsynth_contracts import schema

AUTOTUNE = tf.data.AUTOTUNE
# The start of the message of the assertion on labels; data_checks finds
# the file and label in it.
LABEL_OUTSIDE = 'a label id outside the vocabulary of the manifest, in'


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


def _records(files: list[str], compression: str, shuffle: bool, seed: int,
             originals_only: bool) -> tf.data.Dataset:
  """(serialized record, its file's path) from every shard, read in
  parallel; without augmented copies if `originals_only`."""
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
  return dataset


def _parse_function(manifest: manifest_lib.Manifest, with_metadata: bool,
                    features: tuple[str, ...]):
  """(serialized [B], paths [B]) -> the model's inputs and one-hot labels,
  refusing a label outside the vocabulary, naming its file."""
  num_classes = manifest.vocabulary.num_classes

  def to_inputs(serialized, paths):
    parsed = schema.parse_batch(
        serialized, manifest.mfcc_shape, manifest.audio_samples,
        {key: size for key, size in manifest.representation_sizes.items()
         if key in features})
    labels = parsed[schema.LABEL]
    inside = (labels >= 0) & (labels < num_classes)
    check = tf.debugging.Assert(
        tf.reduce_all(inside),
        [LABEL_OUTSIDE, tf.boolean_mask(paths, ~inside)[:1],
         'label id', tf.boolean_mask(labels, ~inside)[:1]], summarize=1)
    with tf.control_dependencies([check]):
      one_hot = tf.one_hot(labels, num_classes)
    inputs = ({name: parsed[name] for name in features} if len(features) > 1
              else parsed[features[0]])
    if with_metadata:
      return inputs, one_hot, {
          key: parsed[key] for key in (schema.SOURCE, schema.PITCH,
                                       schema.INSTRUMENT, schema.NOTE_STR,
                                       schema.MFCC)}
    return inputs, one_hot

  return to_inputs


def make_dataset(files: list[str], manifest: manifest_lib.Manifest,
                 batch_size: int, *, shuffle: bool = False, seed: int = 0,
                 shuffle_buffer: int = 10_000, cache: str = 'none',
                 cache_file: str | None = None,
                 drop_remainder: bool = False,
                 num_examples: int | None = None,
                 with_metadata: bool = False,
                 originals_only: bool = False,
                 features: tuple[str, ...] = (schema.MFCC,)
                 ) -> tf.data.Dataset:
  """(inputs, one-hot float32 [B, classes]): the inputs are the one feature
  a model reads, or a dict of the `features` it reads: schema.MFCC float32
  [B, frames, coefficients], a representation's key float32 [B, size].

  Shards are read in parallel (interleave), optionally cached as serialized
  records, shuffled with a seeded buffer, batched, parsed a batch at a time
  with one parse_example call, and prefetched. Each record travels with the
  name of its file, so that a bad label can be traced to it.

  Args:
    num_examples: the records these files hold (the manifest's count), so
      that Keras knows an epoch's length.
    with_metadata: also yield a third element, {source, pitch, instrument,
      note_str} tensors [B] for sliced evaluation, and the mfcc [B, frames,
      coefficients] whatever the model reads, for pictures of the notes.
    originals_only: leave out the records that are augmented copies.
    cache: where to keep the records after the first pass:
      cache_policy.MEMORY, DISK (in `cache_file`) or NONE.
  """
  if cache not in ('memory', 'disk', 'none') or (cache == 'disk' and
                                                 not cache_file):
    raise ValueError(f'cache {cache!r} (cache_file {cache_file!r}): expected '
                     'memory, none, or disk with a cache_file')
  dataset = _records(files, manifest.tf_compression_type, shuffle, seed,
                     originals_only)
  if cache == 'memory':
    dataset = dataset.cache()
  elif cache == 'disk':
    dataset = dataset.cache(filename=cache_file)
  if shuffle:
    dataset = dataset.shuffle(shuffle_buffer, seed=seed,
                              reshuffle_each_iteration=True)
  dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
  if num_examples is not None:
    batches = (num_examples // batch_size if drop_remainder
               else -(-num_examples // batch_size))
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(batches))
  return dataset.map(_parse_function(manifest, with_metadata, features),
                     num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)
