"""The files TensorFlow Datasets reads to load the job's output as a dataset.

`tfds.builder_from_directory(output_dir).as_dataset(split='train')` needs
`dataset_info.json` (splits, shard lengths, file names), `features.json`
(how to decode a record) and, for the label, `label.labels.txt`. TFDS's own
writer (`tfds.folder_dataset.write_metadata`) writes them from a
FeaturesDict built from the schema's field list, so they follow whatever
TFDS version is installed (tests/test_nsynth_tfrecords.py loads the result
through TFDS).

TFDS reads only uncompressed TFRecords (its reader opens files without a
compression type), so these files are written for --compression=none, the
only time the launcher imports TFDS (and with it TensorFlow).
"""

from collections.abc import Sequence

import numpy as np

from nsynth_contracts import schema

# What the writer puts beside the shards: the names --overwrite may replace.
FILE_NAMES = ('dataset_info.json', 'features.json', 'label.labels.txt')
# Our shard names, `<split>-00000-of-00002.tfrecord`, in TFDS's template
# language.
_TEMPLATE = '{SPLIT}-{SHARD_X_OF_Y}.tfrecord'
_DESCRIPTION = ('NSynth notes as MFCCs, written by nsynth-tfrecords; '
                'manifest.json beside this file describes them fully.')


class TfdsMissingError(ImportError):
  """--compression=none needs tensorflow-datasets; the message says so."""


def features(families: Sequence[str], mfcc_shape: tuple[int, int],
             audio_samples: int | None,
             representation_sizes: dict[str, int] | None = None):
  """The tfds.features.FeaturesDict of one record, from the schema."""
  tfds = _tfds()
  described = {schema.MFCC: tfds.features.Tensor(shape=mfcc_shape,
                                                 dtype=np.float32)}
  for key, dtype in schema.SCALAR_FEATURES.items():
    if key == schema.LABEL:
      described[key] = tfds.features.ClassLabel(names=list(families))
    elif dtype == 'string':
      described[key] = tfds.features.Text()
    else:
      described[key] = tfds.features.Scalar(dtype=np.dtype(dtype).type)
  if audio_samples:
    described[schema.AUDIO] = tfds.features.Tensor(shape=(audio_samples,),
                                                   dtype=np.float32)
  for key, size in (representation_sizes or {}).items():
    described[key] = tfds.features.Tensor(shape=(size,), dtype=np.float32)
  return tfds.features.FeaturesDict(described)


def write(directory: str, version: str, families: Sequence[str],
          mfcc_shape: tuple[int, int], audio_samples: int | None,
          representation_sizes: dict[str, int] | None,
          shards: dict[str, list[tuple[int, int]]]) -> None:
  """Writes TFDS's metadata files into `directory`.

  Args:
    shards: split -> [(records, bytes)] per shard, in shard order.
  """
  tfds = _tfds()
  template = tfds.core.ShardedFileTemplate(
      data_dir=tfds.core.Path(directory), template=_TEMPLATE,
      filetype_suffix='tfrecord')
  split_infos = [
      tfds.core.SplitInfo(
          name=split, shard_lengths=[records for records, _ in split_shards],
          num_bytes=sum(size for _, size in split_shards),
          filename_template=template.replace(split=split))
      for split, split_shards in shards.items()]
  tfds.folder_dataset.write_metadata(
      data_dir=directory,
      features=features(families, mfcc_shape, audio_samples,
                        representation_sizes),
      split_infos=split_infos, version=version, filename_template=template,
      check_data=False, description=_DESCRIPTION,
      supervised_keys=(schema.MFCC, schema.LABEL))


def check_available() -> None:
  """Raises TfdsMissingError before any work if TFDS cannot be imported."""
  _tfds()


def _tfds():
  """TFDS, imported only when metadata is written (TFDS loads TensorFlow,
  which a launcher of gzip output never needs)."""
  try:
    import tensorflow_datasets as tfds
  except ImportError:
    raise TfdsMissingError(
        '--compression=none writes the files TensorFlow Datasets reads, and '
        'needs tensorflow-datasets installed (pip install '
        '\'nsynth-instrument[tfds]\'), or use --compression=gzip') from None
  return tfds
