"""Records written by serialize_note parse back with the shared spec."""

import numpy as np
import tensorflow as tf
from tensorflow.core.example import example_pb2

from nsynth_contracts import schema


def _note(audio=None):
  mfcc = np.random.default_rng(0).standard_normal((126, 20)).astype(np.float32)
  return schema.NoteExample(mfcc=mfcc, label=3, family='guitar',
                            source='acoustic', instrument='guitar_acoustic_001',
                            pitch=60, velocity=100,
                            note_str='guitar_acoustic_001-060-100', audio=audio)


def test_parse_batch_recovers_every_field():
  note = _note()
  parsed = schema.parse_batch(tf.constant([schema.serialize_note(note)] * 2),
                              (126, 20))
  np.testing.assert_array_equal(parsed[schema.MFCC][1].numpy(), note.mfcc)
  assert parsed[schema.MFCC_SHAPE][0].numpy().tolist() == [126, 20]
  assert parsed[schema.LABEL].numpy().tolist() == [3, 3]
  assert parsed[schema.FAMILY][0].numpy() == b'guitar'
  assert parsed[schema.INSTRUMENT][0].numpy() == b'guitar_acoustic_001'
  assert parsed[schema.PITCH][0].numpy() == 60
  assert parsed[schema.VELOCITY][0].numpy() == 100
  assert parsed[schema.NOTE_STR][0].numpy() == b'guitar_acoustic_001-060-100'


def test_fast_float_list_is_the_same_message_as_protobufs_own():
  note = _note()
  slow = example_pb2.Example()
  slow.features.feature[schema.MFCC].float_list.value.extend(
      note.mfcc.ravel().tolist())
  fast = example_pb2.Example.FromString(schema.serialize_note(note))
  assert (fast.features.feature[schema.MFCC] ==
          slow.features.feature[schema.MFCC])


def test_audio_is_kept_only_when_given():
  audio = np.linspace(-1, 1, 64000, dtype=np.float32)
  parsed = schema.parse_batch(
      tf.constant([schema.serialize_note(_note(audio))]), (126, 20), 64000)
  np.testing.assert_array_equal(parsed[schema.AUDIO][0].numpy(), audio)
  plain = example_pb2.Example.FromString(schema.serialize_note(_note()))
  assert schema.AUDIO not in plain.features.feature


def test_a_record_of_another_shape_fails_to_parse_naming_the_feature():
  serialized = schema.serialize_note(_note())
  try:
    schema.parse_batch(tf.constant([serialized]), (100, 20))
  except tf.errors.InvalidArgumentError as e:
    assert 'mfcc' in str(e)
  else:
    raise AssertionError('a 126x20 record parsed as 100x20')
