"""The tf.train.Example layout of one NSynth note, written and parsed here only.

The Beam job calls `serialize_note`, the trainer calls `parse_batch` on
batches of serialized records, both with the shapes that the manifest states.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf
from tensorflow.core.example import example_pb2
from tensorflow.core.example import feature_pb2

MFCC = 'mfcc'                # float32 [frames * coefficients], row-major
MFCC_SHAPE = 'mfcc_shape'    # int64 [2]: frames, coefficients
LABEL = 'label'              # int64 []: id in the manifest's label vocabulary
FAMILY = 'family'            # bytes []: NSynth family name
SOURCE = 'source'            # bytes []: acoustic / electronic / synthetic
INSTRUMENT = 'instrument'    # bytes []: instrument_str, e.g. guitar_acoustic_010
PITCH = 'pitch'              # int64 []: MIDI pitch
VELOCITY = 'velocity'        # int64 []: MIDI velocity
NOTE_STR = 'note_str'        # bytes []: NSynth's unique note name
AUDIO = 'audio'              # float32 [clip_samples], only with --keep_audio


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
  audio: np.ndarray | None = None  # float32 [clip_samples]


def _varint(value: int) -> bytes:
  out = bytearray()
  while True:
    low = value & 0x7F
    value >>= 7
    if value:
      out.append(low | 0x80)
    else:
      out.append(low)
      return bytes(out)


# FloatList has one field, `repeated float value = 1 [packed = true]`: tag 1,
# wire type 2 (length-delimited). Handing protobuf the packed bytes is ~12x
# faster than extending the repeated field from 2,520 Python floats, and the
# resulting message is identical (a test checks it).
_PACKED_FLOAT_FIELD_TAG = b'\x0a'


def _float_feature(values: np.ndarray) -> feature_pb2.Feature:
  raw = np.ascontiguousarray(values, dtype='<f4').tobytes()
  float_list = feature_pb2.FloatList()
  float_list.MergeFromString(_PACKED_FLOAT_FIELD_TAG + _varint(len(raw)) + raw)
  return feature_pb2.Feature(float_list=float_list)


def _int_feature(*values: int) -> feature_pb2.Feature:
  return feature_pb2.Feature(int64_list=feature_pb2.Int64List(value=values))


def _bytes_feature(value: str) -> feature_pb2.Feature:
  return feature_pb2.Feature(
      bytes_list=feature_pb2.BytesList(value=[value.encode('utf-8')]))


def serialize_note(note: NoteExample) -> bytes:
  """A serialized tf.train.Example for one note."""
  feature = {
      MFCC: _float_feature(note.mfcc),
      MFCC_SHAPE: _int_feature(*note.mfcc.shape),
      LABEL: _int_feature(note.label),
      FAMILY: _bytes_feature(note.family),
      SOURCE: _bytes_feature(note.source),
      INSTRUMENT: _bytes_feature(note.instrument),
      PITCH: _int_feature(note.pitch),
      VELOCITY: _int_feature(note.velocity),
      NOTE_STR: _bytes_feature(note.note_str),
  }
  if note.audio is not None:
    feature[AUDIO] = _float_feature(note.audio)
  return example_pb2.Example(
      features=feature_pb2.Features(feature=feature)).SerializeToString()


def feature_spec(mfcc_shape: tuple[int, int],
                 audio_samples: int | None = None) -> dict:
  """The tf.io.parse_example spec for records of the given shapes.

  Args:
    mfcc_shape: (frames, coefficients), from the manifest.
    audio_samples: clip length in samples when the records keep audio.
  """
  frames, coefficients = mfcc_shape
  spec = {
      MFCC: tf.io.FixedLenFeature([frames, coefficients], tf.float32),
      MFCC_SHAPE: tf.io.FixedLenFeature([2], tf.int64),
      LABEL: tf.io.FixedLenFeature([], tf.int64),
      FAMILY: tf.io.FixedLenFeature([], tf.string),
      SOURCE: tf.io.FixedLenFeature([], tf.string),
      INSTRUMENT: tf.io.FixedLenFeature([], tf.string),
      PITCH: tf.io.FixedLenFeature([], tf.int64),
      VELOCITY: tf.io.FixedLenFeature([], tf.int64),
      NOTE_STR: tf.io.FixedLenFeature([], tf.string),
  }
  if audio_samples:
    spec[AUDIO] = tf.io.FixedLenFeature([audio_samples], tf.float32)
  return spec


def parse_batch(serialized: tf.Tensor, mfcc_shape: tuple[int, int],
                audio_samples: int | None = None) -> dict[str, tf.Tensor]:
  """Parses a batch of records with one parse_example call.

  Args:
    serialized: string [batch].
    mfcc_shape: (frames, coefficients), from the manifest.
    audio_samples: clip length in samples when the records keep audio.

  Returns:
    A dict of tensors keyed by this module's feature names; `mfcc` is
    float32 [batch, frames, coefficients].
  """
  return tf.io.parse_example(serialized,
                             feature_spec(mfcc_shape, audio_samples))
