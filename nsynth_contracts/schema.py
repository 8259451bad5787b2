"""The tf.train.Example layout of one NSynth note, written and parsed here only.

The Beam job calls `serialize_note`, the trainer calls `parse_batch` on
batches of serialized records, both with the shapes that the manifest states.

Writing needs no TensorFlow: `serialize_note` emits the protobuf wire format
of tf.train.Example directly (a test parses it with TensorFlow's own
example_pb2), so the Beam launcher never imports TensorFlow. Parsing imports
it when first called.
"""

import dataclasses
import typing

import numpy as np

if typing.TYPE_CHECKING:  # Annotations only: parsing imports it when called.
  import tensorflow as tf

MFCC = 'mfcc'                # float32 [frames * coefficients], row-major
MFCC_SHAPE = 'mfcc_shape'    # int64 [2]: frames, coefficients
LABEL = 'label'              # int64 []: id in the manifest's label vocabulary
FAMILY = 'family'            # bytes []: NSynth family name
SOURCE = 'source'            # bytes []: acoustic / electronic / synthetic
INSTRUMENT = 'instrument'    # bytes []: instrument_str (guitar_acoustic_010)
PITCH = 'pitch'              # int64 []: MIDI pitch
VELOCITY = 'velocity'        # int64 []: MIDI velocity
NOTE_STR = 'note_str'        # bytes []: NSynth's unique note name
AUGMENTATION = 'augmentation'  # int64 []: 0 the note as read; k its k-th
                               # augmented copy (train split only)
AUDIO = 'audio'              # float32 [clip_samples], only with --keep_audio
# Besides these, each pretrained representation the records hold is a
# float32 [size] feature under its own key (Representation.key; the manifest
# lists them).

# Every record's scalar features and their dtypes: the parse spec and the
# TFDS feature description are both made from this.
SCALAR_FEATURES: dict[str, str] = {
    LABEL: 'int64', FAMILY: 'string', SOURCE: 'string', INSTRUMENT: 'string',
    PITCH: 'int64', VELOCITY: 'int64', NOTE_STR: 'string',
    AUGMENTATION: 'int64',
}


@dataclasses.dataclass(frozen=True)
class NoteExample:
  """One note's features and metadata, as stored in a record."""
  mfcc: np.ndarray           # float32 [frames, coefficients]
  label: int
  family: str
  source: str
  instrument: str
  pitch: int
  velocity: int
  note_str: str
  augmentation: int = 0
  audio: np.ndarray | None = None  # float32 [clip_samples]
  # {representation key: float32 [size]}
  representations: dict[str, np.ndarray] = dataclasses.field(
      default_factory=dict)


# Keys a representation may not take: the record's own features.
RESERVED_KEYS = frozenset(
    {MFCC, MFCC_SHAPE, AUDIO, *SCALAR_FEATURES})


def check_representation_key(key: str) -> str:
  """Returns `key` if a representation may be stored under it.

  Raises:
    ValueError: a key of the record's own features, or not a lower-case
      identifier.
  """
  if key in RESERVED_KEYS or not key.isidentifier() or key != key.lower():
    raise ValueError(f'{key!r} cannot name a representation in a record')
  return key


_ONE_BYTE_VARINTS = tuple(bytes((v,)) for v in range(0x80))


def _varint(value: int) -> bytes:
  if value < 0x80:  # Tags, ids, MIDI numbers: nearly every varint written.
    return _ONE_BYTE_VARINTS[value]
  out = bytearray()
  while True:
    low = value & 0x7F
    value >>= 7
    if value:
      out.append(low | 0x80)
    else:
      out.append(low)
      return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
  """A length-delimited protobuf field (wire type 2)."""
  return b''.join((_varint(number << 3 | 2), _varint(len(payload)), payload))


# tf.train.Feature: oneof bytes_list = 1, float_list = 2, int64_list = 3; each
# list has one field, `repeated ... value = 1` (floats and ints packed).
def _bytes_feature(value: str) -> bytes:
  return _field(1, _field(1, value.encode('utf-8')))


def _float_feature(values: np.ndarray) -> bytes:
  raw = np.ascontiguousarray(values, dtype='<f4').tobytes()
  return _field(2, _field(1, raw))


def _int_feature(*values: int) -> bytes:
  # Non-negative only here (shapes, ids, MIDI numbers): plain varints.
  if any(v < 0 for v in values):
    raise ValueError(f'negative int64 feature values {values}')
  return _field(3, _field(1, b''.join(_varint(v) for v in values)))


# Features.feature is a map<string, Feature>: each entry is { key = 1,
# value = 2 }. The key halves never change, so they are encoded once.
_ENTRY_KEYS = {key: _field(1, key.encode('utf-8')) for key in (
    MFCC, MFCC_SHAPE, LABEL, FAMILY, SOURCE, INSTRUMENT, PITCH, VELOCITY,
    NOTE_STR, AUGMENTATION, AUDIO)}


def _entry_key(key: str) -> bytes:
  return _ENTRY_KEYS.get(key) or _field(1, key.encode('utf-8'))


def serialize_note(note: NoteExample) -> bytes:
  """A serialized tf.train.Example for one note.

  Example { features = 1: Features { feature = 1: map<string, Feature> } }.
  """
  feature = [
      (MFCC, _float_feature(note.mfcc)),
      (MFCC_SHAPE, _int_feature(*note.mfcc.shape)),
      (LABEL, _int_feature(note.label)),
      (FAMILY, _bytes_feature(note.family)),
      (SOURCE, _bytes_feature(note.source)),
      (INSTRUMENT, _bytes_feature(note.instrument)),
      (PITCH, _int_feature(note.pitch)),
      (VELOCITY, _int_feature(note.velocity)),
      (NOTE_STR, _bytes_feature(note.note_str)),
      (AUGMENTATION, _int_feature(note.augmentation)),
  ]
  if note.audio is not None:
    feature.append((AUDIO, _float_feature(note.audio)))
  feature.extend((key, _float_feature(values))
                 for key, values in note.representations.items())
  entries = b''.join(
      _field(1, _entry_key(key) + _field(2, value)) for key, value in feature)
  return _field(1, entries)


def feature_spec(mfcc_shape: tuple[int, int],
                 audio_samples: int | None = None,
                 representation_sizes: dict[str, int] | None = None) -> dict:
  """The tf.io.parse_example spec for records of the given shapes.

  Args:
    mfcc_shape: (frames, coefficients), from the manifest.
    audio_samples: clip length in samples when the records keep audio.
    representation_sizes: {key: values} of the representations to parse
      (the manifest's representation_sizes, or those a model reads).
  """
  import tensorflow as tf
  frames, coefficients = mfcc_shape
  spec = {
      MFCC: tf.io.FixedLenFeature([frames, coefficients], tf.float32),
      MFCC_SHAPE: tf.io.FixedLenFeature([2], tf.int64),
  }
  spec.update({key: tf.io.FixedLenFeature([], tf.as_dtype(dtype))
               for key, dtype in SCALAR_FEATURES.items()})
  # A record without it is a note as read (as written before copies were).
  spec[AUGMENTATION] = tf.io.FixedLenFeature([], tf.int64, default_value=0)
  if audio_samples:
    spec[AUDIO] = tf.io.FixedLenFeature([audio_samples], tf.float32)
  for key, size in (representation_sizes or {}).items():
    spec[check_representation_key(key)] = tf.io.FixedLenFeature([size],
                                                                tf.float32)
  return spec


def parse_batch(serialized: 'tf.Tensor', mfcc_shape: tuple[int, int],
                audio_samples: int | None = None,
                representation_sizes: dict[str, int] | None = None
                ) -> dict[str, 'tf.Tensor']:
  """Parses a batch of records with one parse_example call.

  Args:
    serialized: string [batch].
    mfcc_shape: (frames, coefficients), from the manifest.
    audio_samples: clip length in samples when the records keep audio.
    representation_sizes: {key: values} of the representations to parse.

  Returns:
    A dict of tensors keyed by this module's feature names; `mfcc` is
    float32 [batch, frames, coefficients].
  """
  import tensorflow as tf
  return tf.io.parse_example(
      serialized, feature_spec(mfcc_shape, audio_samples,
                               representation_sizes))
