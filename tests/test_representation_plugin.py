"""A second kind of representation is one module and one registration.

tests/tiny_representation.py is a whole kind: nothing else in the project
is edited for it. Registered here, the Beam job writes its vectors, the
trainer's default model learns on them, and the export computes them inside
the SavedModel, in both precisions' signatures.
"""

import numpy as np
import pytest
import tensorflow as tf

from beam_pipelines import nsynth_tfrecords
from nsynth_contracts import audio_decoding
from nsynth_contracts import manifest as manifest_lib
from nsynth_contracts import representation
from nsynth_contracts import representation_kinds
from nsynth_contracts import schema
from serving import exporter
from serving import signatures
from tests import tiny_representation
from trainer import job_layout
from trainer import layers
from trainer import models
from trainer import train

pytestmark = pytest.mark.slow   # the Beam job, training and an export

TINY = tiny_representation.TinyRepresentation(width=8)


@pytest.fixture(scope='module')
def registered():
  kind = representation_kinds.register(
      tiny_representation.TinyRepresentation)
  yield kind
  representation_kinds.unregister(kind)


@pytest.fixture(scope='module')
def tiny_records(registered, tiny_demo, tmp_path_factory):
  """The Beam job with --embedding=tiny:8, a few notes per family."""
  inputs = ','.join(str(tiny_demo / f'nsynth-{s}') for s in ('train',
                                                             'valid'))
  job = nsynth_tfrecords.run([
      f'--input={inputs}', f'--output_dir={tmp_path_factory.mktemp("out")}',
      '--embedding=tiny:8', '--max_notes_per_family=6', '--num_mfcc=20'])
  return job.dataset_dir


@pytest.fixture(scope='module')
def tiny_job(tiny_records, tmp_path_factory):
  job_dir = tmp_path_factory.mktemp('job')
  train.train(train.TrainConfig(
      data_dir=tiny_records, job_dir=str(job_dir), epochs=2, batch_size=16,
      eval_splits=('valid',)))
  return str(job_dir)


def test_the_kind_is_known_only_while_registered(registered):
  assert representation_kinds.parse('tiny:8') == TINY
  representation_kinds.unregister(registered)
  try:
    with pytest.raises(representation.RepresentationError,
                       match="'tiny:8' names no representation"):
      representation_kinds.parse('tiny:8')
  finally:
    representation_kinds.register(registered)


def test_the_beam_job_writes_its_vectors(tiny_records, tiny_demo):
  manifest = manifest_lib.read(tiny_records)
  record = manifest.representation(TINY.key)
  assert record.representation == TINY
  assert record.weights_sha256 == representation.weights_sha256(
      TINY.read_weights())
  assert manifest.representation_sizes == {TINY.key: 8}
  files = [f'{tiny_records}/{f}' for f in manifest.split_files('valid')]
  batch = next(iter(tf.data.TFRecordDataset(
      files, compression_type=manifest.tf_compression_type).batch(4)))
  parsed = schema.parse_batch(batch, manifest.mfcc_shape, None,
                              manifest.representation_sizes)
  # The vectors are the network's on the notes' audio.
  clips = np.stack([audio_decoding.decode_clip(
      (tiny_demo / 'nsynth-valid' / 'audio' / f'{n.decode()}.wav'
       ).read_bytes()) for n in parsed[schema.NOTE_STR].numpy()])
  network = TINY.build_model(TINY.read_weights())
  np.testing.assert_allclose(parsed[TINY.key].numpy(),
                             network(clips).numpy(), atol=1e-5)


def test_the_trainer_and_the_export_take_it(tiny_job, tiny_records,
                                            tmp_path):
  model = models.load(job_layout.best_model_path(tiny_job))
  assert layers.input_names(model) == (TINY.key,)
  version = exporter.export_job(tiny_job, str(tmp_path / 'exports'))
  loaded = tf.saved_model.load(version)
  bfloat16 = signatures.in_precision(signatures.AUDIO_SIGNATURE, 'bfloat16')
  assert {signatures.AUDIO_SIGNATURE, bfloat16} <= set(loaded.signatures)
  clips = np.random.default_rng(0).uniform(-0.3, 0.3, (3, 64000)).astype(
      np.float32)
  answered = loaded.signatures[signatures.AUDIO_SIGNATURE](
      audio=tf.constant(clips))[signatures.PROBABILITIES].numpy()
  network = TINY.build_model(TINY.read_weights())
  expected = model(network(clips), training=False).numpy()
  np.testing.assert_allclose(answered, expected, atol=1e-5)
