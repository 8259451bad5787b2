"""The files TensorFlow Datasets reads to load the job's output as a dataset.

`tfds.builder_from_directory(output_dir).as_dataset(split='train')` needs
`dataset_info.json` (splits, shard lengths, file names), `features.json`
(how to decode a record) and, for the label, `label.labels.txt`. They are
written here as TFDS 4.9 writes them (tests/test_nsynth_tfrecords.py loads
the result through TFDS itself), without importing TFDS, which would bring
TensorFlow into the launcher.

TFDS reads only uncompressed TFRecords (its reader opens files without a
compression type), so these files are written for --compression=none.
"""

import json
import posixpath
from collections.abc import Sequence

from nsynth_contracts import schema

DATASET_NAME = 'nsynth_mfcc'
FILES = ('dataset_info.json', 'features.json', 'label.labels.txt')
# Our shard names, in TFDS's template language.
_TEMPLATE = '{SPLIT}-{SHARD_X_OF_Y}.tfrecord'
_CLASS = 'tensorflow_datasets.core.features.'


def _tensor(dtype: str, shape: Sequence[int] = ()) -> dict:
  return {'pythonClassName': _CLASS + ('scalar.Scalar' if not shape else
                                       'tensor_feature.Tensor'),
          'tensor': {'dtype': dtype, 'encoding': 'none',
                     'shape': {'dimensions': [str(d) for d in shape]}
                     if shape else {}}}


def features_json(num_classes: int, mfcc_shape: tuple[int, int],
                  audio_samples: int | None) -> dict:
  """The FeaturesDict of one record, from the schema's own field list."""
  features = {schema.MFCC: _tensor('float32', mfcc_shape)}
  for key, dtype in schema.SCALAR_FEATURES.items():
    if key == schema.LABEL:
      features[key] = {
          'pythonClassName': _CLASS + 'class_label_feature.ClassLabel',
          'classLabel': {'numClasses': str(num_classes)}}
    elif dtype == 'string':
      features[key] = {'pythonClassName': _CLASS + 'text_feature.Text',
                       'text': {}}
    else:
      features[key] = _tensor(dtype)
  if audio_samples:
    features[schema.AUDIO] = _tensor('float32', (audio_samples,))
  return {'pythonClassName': _CLASS + 'features_dict.FeaturesDict',
          'featuresDict': {'features': features}}


def dataset_info_json(version: str, description: str,
                      shards: dict[str, list[tuple[int, int]]]) -> dict:
  """Args: shards: split -> [(records, bytes)] per shard, in shard order."""
  return {
      'name': DATASET_NAME,
      'version': version,
      'description': description,
      'fileFormat': 'tfrecord',
      'splits': [{
          'name': split,
          'filepathTemplate': _TEMPLATE,
          'shardLengths': [str(records) for records, _ in split_shards],
          'numBytes': str(sum(size for _, size in split_shards)),
      } for split, split_shards in shards.items()],
      'supervisedKeys': {'tuple': {'items': [
          {'featureKey': schema.MFCC}, {'featureKey': schema.LABEL}]}},
  }


def write(directory: str, version: str, families: Sequence[str],
          mfcc_shape: tuple[int, int], audio_samples: int | None,
          shards: dict[str, list[tuple[int, int]]]) -> list[str]:
  """Writes the three files into `directory`; returns their names."""
  from apache_beam.io.filesystems import FileSystems  # pylint: disable=g-import-not-at-top
  contents = {
      'dataset_info.json': json.dumps(dataset_info_json(
          version, 'NSynth notes as MFCCs, written by nsynth-tfrecords; '
          'manifest.json beside this file describes them fully.', shards),
          indent=2),
      'features.json': json.dumps(features_json(
          len(families), mfcc_shape, audio_samples), indent=2),
      'label.labels.txt': '\n'.join(families) + '\n',
  }
  for name, text in contents.items():
    with FileSystems.create(posixpath.join(directory, name)) as f:
      f.write(text.encode('utf-8'))
  return list(contents)
