"""manifest.json: everything a reader of the TFRecords needs, in one file.

The Beam job writes it last, after every shard is in place, so its presence
means the data directory is complete. The trainer and the export read shapes,
the label vocabulary and normalisation statistics from it and nowhere else.
"""

import dataclasses
import fnmatch
import json
import posixpath

from nsynth_common import dataclass_json
from nsynth_contracts import feature_params
from nsynth_contracts import labels
from nsynth_contracts import outcomes
from nsynth_contracts import representation as representation_lib
from nsynth_contracts import representation_kinds

MANIFEST_FILENAME = 'manifest.json'
# 2: lists the files of the dataset; 3: any number of representations, each
# under its own record key.
FORMAT_VERSION = 3
GZIP = 'GZIP'
NO_COMPRESSION = 'NONE'
# TFRecord compression -> shard file suffix.
SHARD_SUFFIXES = {GZIP: '.tfrecord.gz', NO_COMPRESSION: '.tfrecord'}


class ManifestError(ValueError):
  """A manifest is missing or unusable; the message names its path."""


def shard_prefix(split: str) -> str:
  """Shards are `<split>-SSSSS-of-NNNNN.tfrecord[.gz]`."""
  return split


def shard_pattern(split: str, compression: str = GZIP) -> str:
  return f'{shard_prefix(split)}-?????-of-?????{SHARD_SUFFIXES[compression]}'


@dataclasses.dataclass(frozen=True)
class SplitSummary:
  num_examples: int              # records: notes and augmented copies
  families: dict[str, int]       # family -> records
  num_instruments: int
  file_pattern: str
  num_augmented: int = 0         # records that are augmented copies
  # sample library -> records read from it, notes and windows (the demo's
  # field; NSynth's notes have none)
  libraries: dict[str, int] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Normalization:
  """Per-coefficient statistics over every frame of one split."""
  split: str
  num_frames: int
  mean: list[float]              # [coefficients]
  std: list[float]               # [coefficients]


@dataclasses.dataclass(frozen=True)
class RepresentationRecord:
  """A pretrained representation the records hold (under its key): what it
  is, exactly which weights computed it, and its statistics."""
  representation: representation_lib.Representation
  weights_sha256: str                # of the arrays the network was built from
  normalization: Normalization | None   # over the training split's records

  @property
  def key(self) -> str:
    return self.representation.key

  @property
  def size(self) -> int:
    return self.representation.size

  # As JSON: the representation's kind and params, beside its key and size
  # (derived from them, and checked), flat.
  def to_json(self) -> dict:
    return {**self.representation.to_json(), 'key': self.key,
            'size': self.size, 'weights_sha256': self.weights_sha256,
            'normalization': (dataclass_json.to_json(self.normalization)
                              if self.normalization else None)}

  @classmethod
  def from_json(cls, data, where: str = 'representation'
                ) -> 'RepresentationRecord':
    """Raises: ValueError naming what is wrong."""
    read = dataclass_json.value_of
    dataclass_json.refuse_unknown(read(dict, data, where), (
        'kind', 'params', 'key', 'size', 'weights_sha256', 'normalization'),
        where)
    representation = representation_kinds.from_json(data)
    for field, value in (('key', representation.key),
                         ('size', representation.size)):
      if data[field] != value:
        raise ValueError(f'representation {field} {data[field]!r} disagrees '
                         f'with its params, which give {value!r}')
    return cls(representation,
               read(str, data['weights_sha256'], f'{where}.weights_sha256'),
               read(Normalization | None, data.get('normalization'),
                    f'{where}.normalization'))


@dataclasses.dataclass(frozen=True)
class Filters:
  """Which notes the run kept."""
  kept_sources: tuple[str, ...]
  dropped_families: tuple[str, ...]
  max_notes_per_family: int          # 0: no cap


@dataclasses.dataclass(frozen=True)
class SplitRecord:
  """How notes were put in splits, and whether the splits share
  instruments (measured on the output, not assumed)."""
  name: str                          # directories | instrument | note | library
  description: str
  fractions: tuple[float, ...] | None
  inputs: tuple[str, ...]
  instruments_in_several_splits: int
  instrument_disjoint: bool
  holdout_library: str | None = None


@dataclasses.dataclass(frozen=True)
class AugmentationRecord:
  """The augmented copies a run wrote: to which split, how many of each
  note, the seed, and the range of every transformation."""
  split: str
  copies: int
  seed: int
  ranges: dict                       # transformation -> its range or value

  # As JSON: the ranges beside split, copies and seed, flat.
  def to_json(self) -> dict:
    return {'split': self.split, 'copies': self.copies, 'seed': self.seed,
            **self.ranges}

  @classmethod
  def from_json(cls, data, where: str = 'augmentation'
                ) -> 'AugmentationRecord':
    """Raises: dataclass_json.FieldError: naming the field at fault."""
    data = dataclass_json.value_of(dict, data, where)
    named = {name: data[name] for name in ('split', 'copies', 'seed')
             if name in data}
    ranges = {k: v for k, v in data.items() if k not in named}
    return dataclass_json.from_json(cls, {**named, 'ranges': ranges}, where)


@dataclasses.dataclass(frozen=True)
class Manifest:
  project_version: str
  feature_params: feature_params.FeatureParams
  vocabulary: labels.LabelVocabulary
  splits: dict[str, SplitSummary]
  normalization: Normalization | None
  filters: Filters
  split_method: SplitRecord
  accounting: outcomes.Accounting
  audio_samples: int | None = None   # set when records keep the waveform
  # Every file of the dataset but the manifest, relative to its directory:
  # what --overwrite may replace, and the shards a reader opens.
  files: tuple[str, ...] = ()
  compression: str = GZIP        # of the shards: GZIP or NONE
  augmentation: AugmentationRecord | None = None
  # In the order the records' features were computed; each under its key.
  representations: tuple[RepresentationRecord, ...] = ()
  # Records per arithmetic the workers computed the representations in
  # (nsynth_contracts.precision: float32, bfloat16); empty without any.
  representation_precision: dict[str, int] = dataclasses.field(
      default_factory=dict)
  format_version: int = FORMAT_VERSION

  @property
  def tf_compression_type(self) -> str:
    """For tf.data.TFRecordDataset's compression_type."""
    return '' if self.compression == NO_COMPRESSION else self.compression

  def split_files(self, split: str) -> list[str]:
    """The listed shards of one split, relative to the data directory."""
    return sorted(f for f in self.files
                  if fnmatch.fnmatchcase(f, self.splits[split].file_pattern))

  @property
  def mfcc_shape(self) -> tuple[int, int]:
    return self.feature_params.mfcc_shape

  @property
  def representation_sizes(self) -> dict[str, int]:
    """{record key: values} of every representation the records hold."""
    return {r.key: r.size for r in self.representations}

  def representation(self, key: str) -> RepresentationRecord:
    """Raises: KeyError: the records hold no representation `key`."""
    for record in self.representations:
      if record.key == key:
        return record
    raise KeyError(key)

  # As JSON: in this order, the vocabulary as labels.LabelVocabulary writes
  # it, and mfcc_shape beside the feature parameters it derives from.
  def to_json(self) -> dict:
    return {
        'format_version': self.format_version,
        'project_version': self.project_version,
        'feature_params': dataclass_json.to_json(self.feature_params),
        'mfcc_shape': list(self.mfcc_shape),
        'audio_samples': self.audio_samples,
        'label_vocabulary': self.vocabulary.to_json(),
        'splits': {k: dataclass_json.to_json(v)
                   for k, v in self.splits.items()},
        'normalization': (dataclass_json.to_json(self.normalization)
                          if self.normalization else None),
        'filters': dataclass_json.to_json(self.filters),
        'split_method': dataclass_json.to_json(self.split_method),
        'accounting': self.accounting.to_json(),
        'files': list(self.files),
        'compression': self.compression,
        'augmentation': (self.augmentation.to_json() if self.augmentation
                         else None),
        'representations': [r.to_json() for r in self.representations],
        'representation_precision': dict(self.representation_precision),
    }

  @classmethod
  def from_json(cls, data) -> 'Manifest':
    """Raises: ValueError or KeyError, naming the field at fault."""
    _check_format_version(data)
    dataclass_json.refuse_unknown(data, _JSON_FIELDS, 'the manifest')
    read = dataclass_json.value_of
    params = read(feature_params.FeatureParams, data['feature_params'],
                  'feature_params')
    if read(list[int], data['mfcc_shape'], 'mfcc_shape') != list(
        params.mfcc_shape):
      raise ValueError(
          f'manifest mfcc_shape {data["mfcc_shape"]} disagrees with its '
          f'feature_params, which give {list(params.mfcc_shape)}')
    representations = read(list, data['representations'], 'representations')
    return cls(
        project_version=read(str, data['project_version'], 'project_version'),
        feature_params=params,
        vocabulary=labels.LabelVocabulary.from_json(data['label_vocabulary']),
        splits=read(dict[str, SplitSummary], data['splits'], 'splits'),
        normalization=read(Normalization | None, data.get('normalization'),
                           'normalization'),
        filters=read(Filters, data['filters'], 'filters'),
        split_method=read(SplitRecord, data['split_method'], 'split_method'),
        accounting=outcomes.Accounting.from_json(data['accounting']),
        audio_samples=read(int | None, data.get('audio_samples'),
                           'audio_samples'),
        files=read(tuple[str, ...], data['files'], 'files'),
        compression=_known_compression(data['compression']),
        augmentation=(AugmentationRecord.from_json(data['augmentation'])
                      if data.get('augmentation') else None),
        representations=tuple(
            RepresentationRecord.from_json(r, f'representations[{i}]')
            for i, r in enumerate(representations)),
        representation_precision=_precision_counts(
            data.get('representation_precision', {})),
        format_version=data['format_version'],
    )

  def dumps(self) -> str:
    return json.dumps(self.to_json(), indent=2, sort_keys=False) + '\n'


# Every field of a manifest's JSON.
_JSON_FIELDS = (
    'format_version', 'project_version', 'feature_params', 'mfcc_shape',
    'audio_samples', 'label_vocabulary', 'splits', 'normalization', 'filters',
    'split_method', 'accounting', 'files', 'compression', 'augmentation',
    'representations', 'representation_precision')


def _check_format_version(data) -> None:
  if not isinstance(data, dict):
    raise ValueError('it is not a JSON object')
  version = data.get('format_version')
  if version != FORMAT_VERSION:
    older = isinstance(version, int) and 0 < version < FORMAT_VERSION
    raise ValueError(
        f'format_version {version!r} is not {FORMAT_VERSION}' +
        ('; it was written by an older version of the Beam job: run it again'
         if older else ''))


def _precision_counts(value) -> dict[str, int]:
  counts = dataclass_json.value_of(dict[str, int], value,
                                   'representation_precision')
  if any(n < 0 for n in counts.values()):
    raise ValueError('representation_precision counts records: none is < 0')
  return counts


def _known_compression(value) -> str:
  if value not in SHARD_SUFFIXES:
    raise ValueError(f'compression {value!r} is not one of '
                     f'{sorted(SHARD_SUFFIXES)}')
  return value


def listed_files(text: str | bytes) -> list[str]:
  """The `files` of a manifest's JSON text, checking only what that needs.

  Raises:
    ValueError: not a manifest of this format.
  """
  data = json.loads(text)
  _check_format_version(data)
  return dataclass_json.value_of(list[str], data.get('files'), 'files')


def manifest_path(data_dir: str) -> str:
  # posixpath joins gs:// URLs correctly too; os.path would not on Windows.
  return posixpath.join(data_dir, MANIFEST_FILENAME)


def read(data_dir: str) -> Manifest:
  """Reads `<data_dir>/manifest.json` (local or gs://).

  Raises:
    ManifestError: naming the path, when the data directory has no
      manifest (missing, empty, or a Beam job that did not finish), or the
      manifest is malformed.
  """
  import tensorflow as tf
  path = manifest_path(data_dir)
  if not tf.io.gfile.exists(path):
    raise ManifestError(
        f'{path} does not exist: is {data_dir} the --output_dir of a finished '
        f'beam_pipelines.nsynth_tfrecords run?')
  try:
    with tf.io.gfile.GFile(path, 'rb') as f:
      text = f.read()
  except tf.errors.OpError as e:
    raise ManifestError(f'{path} cannot be read: {e.message}') from None
  try:
    return Manifest.from_json(json.loads(text))
  except KeyError as e:
    raise ManifestError(f'{path} is not a valid manifest: it has no field '
                        f'{e}') from None
  except RecursionError:
    raise ManifestError(f'{path} is not a valid manifest: it is nested '
                        f'deeper than any manifest is') from None
  except (ValueError, TypeError, AttributeError) as e:
    raise ManifestError(f'{path} is not a valid manifest: {e}') from None
