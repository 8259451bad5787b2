"""manifest.json: everything a reader of the TFRecords needs, in one file.

The Beam job writes it last, after every shard is in place, so its presence
means the data directory is complete. The trainer and the export read shapes,
the label vocabulary and normalisation statistics from it and nowhere else.
"""

from __future__ import annotations

import dataclasses
import json
import posixpath

from nsynth_contracts import feature_params
from nsynth_contracts import labels

MANIFEST_FILENAME = 'manifest.json'
FORMAT_VERSION = 1
SHARD_SUFFIX = '.tfrecord.gz'


def shard_prefix(split: str) -> str:
  """Shards are `<split>-SSSSS-of-NNNNN.tfrecord.gz`."""
  return split


def shard_pattern(split: str) -> str:
  return f'{shard_prefix(split)}-?????-of-?????{SHARD_SUFFIX}'


@dataclasses.dataclass(frozen=True)
class SplitSummary:
  num_examples: int
  families: dict[str, int]       # family -> examples
  num_instruments: int
  file_pattern: str


@dataclasses.dataclass(frozen=True)
class Normalization:
  """Per-coefficient statistics over every frame of one split."""
  split: str
  num_frames: int
  mean: list[float]              # [coefficients]
  std: list[float]               # [coefficients]


@dataclasses.dataclass(frozen=True)
class Manifest:
  project_version: str
  feature_params: feature_params.FeatureParams
  vocabulary: labels.LabelVocabulary
  splits: dict[str, SplitSummary]
  normalization: Normalization | None
  filters: dict                  # kept_sources, dropped_families, cap
  split_method: dict             # name, description, instrument_disjoint
  accounting: dict               # read / written / filtered / dead_lettered
  audio_samples: int | None = None   # set when records keep the waveform
  format_version: int = FORMAT_VERSION

  @property
  def mfcc_shape(self) -> tuple[int, int]:
    return self.feature_params.mfcc_shape

  def to_json(self) -> dict:
    return {
        'format_version': self.format_version,
        'project_version': self.project_version,
        'feature_params': self.feature_params.to_json(),
        'mfcc_shape': list(self.mfcc_shape),
        'audio_samples': self.audio_samples,
        'label_vocabulary': self.vocabulary.to_json(),
        'splits': {k: dataclasses.asdict(v) for k, v in self.splits.items()},
        'normalization': (dataclasses.asdict(self.normalization)
                          if self.normalization else None),
        'filters': self.filters,
        'split_method': self.split_method,
        'accounting': self.accounting,
    }

  @classmethod
  def from_json(cls, data: dict) -> 'Manifest':
    if data.get('format_version') != FORMAT_VERSION:
      raise ValueError(
          f'manifest format_version {data.get("format_version")!r} is not '
          f'{FORMAT_VERSION}')
    params = feature_params.FeatureParams.from_json(data['feature_params'])
    if tuple(data['mfcc_shape']) != params.mfcc_shape:
      raise ValueError(
          f'manifest mfcc_shape {data["mfcc_shape"]} disagrees with its '
          f'feature_params, which give {list(params.mfcc_shape)}')
    norm = data.get('normalization')
    return cls(
        project_version=data['project_version'],
        feature_params=params,
        vocabulary=labels.LabelVocabulary.from_json(data['label_vocabulary']),
        splits={k: SplitSummary(**v) for k, v in data['splits'].items()},
        normalization=Normalization(**norm) if norm else None,
        filters=data['filters'],
        split_method=data['split_method'],
        accounting=data['accounting'],
        audio_samples=data.get('audio_samples'),
        format_version=data['format_version'],
    )

  def dumps(self) -> str:
    return json.dumps(self.to_json(), indent=2, sort_keys=False) + '\n'


def manifest_path(data_dir: str) -> str:
  # posixpath joins gs:// URLs correctly too; os.path would not on Windows.
  return posixpath.join(data_dir, MANIFEST_FILENAME)


def read(data_dir: str) -> Manifest:
  """Reads `<data_dir>/manifest.json` (local or gs://).

  Raises:
    FileNotFoundError: naming the path, when the data directory has no
      manifest (missing, empty, or a Beam job that did not finish).
    ValueError: naming the path, when the manifest is malformed.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  path = manifest_path(data_dir)
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(
        f'{path} does not exist: is {data_dir} the --output_dir of a finished '
        f'beam_pipelines.nsynth_tfrecords run?')
  with tf.io.gfile.GFile(path, 'r') as f:
    text = f.read()
  try:
    return Manifest.from_json(json.loads(text))
  except (ValueError, KeyError, TypeError) as e:
    raise ValueError(f'{path} is not a valid manifest: {e}') from e
