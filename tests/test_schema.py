"""Records written by serialize_note parse back with the shared spec."""

import dataclasses

import numpy as np
import pytest
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


def test_representations_parse_back_each_under_its_key_when_asked_for():
  mtt = np.linspace(-3, 3, 306, dtype=np.float32)
  msd = np.linspace(5, 6, 7, dtype=np.float32)
  note = dataclasses.replace(_note(), representations={'mtt_x': mtt,
                                                       'msd_y': msd})
  serialized = tf.constant([schema.serialize_note(note)])
  parsed = schema.parse_batch(serialized, (126, 20),
                              representation_sizes={'mtt_x': 306, 'msd_y': 7})
  np.testing.assert_array_equal(parsed['mtt_x'][0].numpy(), mtt)
  np.testing.assert_array_equal(parsed['msd_y'][0].numpy(), msd)
  only_one = schema.parse_batch(serialized, (126, 20),
                                representation_sizes={'msd_y': 7})
  assert 'mtt_x' not in only_one


@pytest.mark.parametrize('key', [schema.MFCC, schema.LABEL, schema.AUDIO,
                                 'Upper', 'has space', '1st'])
def test_a_representation_cannot_take_a_records_own_key(key):
  with pytest.raises(ValueError, match='cannot name a representation'):
    schema.check_representation_key(key)


def _expected_message(note):
  """The same Example built through protobuf's own API (the reference)."""
  expected = example_pb2.Example()
  feature = expected.features.feature
  feature[schema.MFCC].float_list.value.extend(note.mfcc.ravel().tolist())
  feature[schema.MFCC_SHAPE].int64_list.value.extend(note.mfcc.shape)
  feature[schema.LABEL].int64_list.value.append(note.label)
  for key, value in ((schema.FAMILY, note.family),
                     (schema.SOURCE, note.source),
                     (schema.INSTRUMENT, note.instrument),
                     (schema.NOTE_STR, note.note_str)):
    feature[key].bytes_list.value.append(value.encode())
  feature[schema.PITCH].int64_list.value.append(note.pitch)
  feature[schema.VELOCITY].int64_list.value.append(note.velocity)
  feature[schema.AUGMENTATION].int64_list.value.append(note.augmentation)
  if note.audio is not None:
    feature[schema.AUDIO].float_list.value.extend(note.audio.tolist())
  for key, values in note.representations.items():
    feature[key].float_list.value.extend(values.tolist())
  return expected


def test_hand_encoded_example_is_the_message_protobuf_builds():
  embedding = np.random.default_rng(1).standard_normal(306).astype(
      np.float32)
  for note in (_note(), _note(np.linspace(-1, 1, 64000, dtype=np.float32)),
               dataclasses.replace(_note(), augmentation=3),
               dataclasses.replace(_note(), representations={
                   'mtt_musicnn_midend': embedding, 'b': embedding[:3]})):
    parsed = example_pb2.Example.FromString(schema.serialize_note(note))
    assert parsed == _expected_message(note)


def test_large_ids_and_long_strings_encode_correctly():
  note = dataclasses.replace(_note(), label=300, pitch=127, velocity=127,
                             note_str='x' * 1000)
  parsed = example_pb2.Example.FromString(schema.serialize_note(note))
  assert parsed == _expected_message(note)
  with pytest.raises(ValueError, match='negative'):
    schema.serialize_note(dataclasses.replace(note, label=-1))


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
