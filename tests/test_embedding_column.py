"""The Beam job writes the pretrained embedding beside the MFCCs.

Checked against the contract's own function run apart from the job, on the
same decoded clips; the manifest names the weights (their SHA-256) and holds
the training split's statistics, checked against NumPy.
"""

import glob
import os

import numpy as np
import pytest
import tensorflow as tf

from beam_pipelines import job as job_lib
from beam_pipelines import nsynth_tfrecords
from nsynth_contracts import audio_decoding
from nsynth_contracts import embedding
from nsynth_contracts import embedding_params
from nsynth_contracts import feature_params
from nsynth_contracts import manifest as manifest_lib
from nsynth_contracts import musicnn_weights
from nsynth_contracts import schema

# Every test runs the whole Beam job, the embedding included.
pytestmark = pytest.mark.slow

PARAMS = embedding_params.DEFAULT_PARAMS


def read_records(out, split, manifest):
  files = sorted(glob.glob(os.path.join(glob.escape(str(out)),
                                        f'{split}-*.tfrecord.gz')))
  records = tf.data.TFRecordDataset(files, compression_type='GZIP').batch(512)
  parsed = [schema.parse_batch(b, manifest.mfcc_shape,
                               embedding_size=manifest.embedding_size)
            for b in records]
  return {key: np.concatenate([p[key].numpy() for p in parsed])
          for key in parsed[0]}


@pytest.fixture(scope='module')
def embedded_job(tiny_demo, tmp_path_factory):
  out = tmp_path_factory.mktemp('embedded')
  inputs = ','.join(str(tiny_demo / f'nsynth-{s}') for s in ('train', 'test'))
  job = nsynth_tfrecords.run([f'--input={inputs}', f'--output_dir={out}'])
  return job, out


def test_records_hold_the_embedding_the_contract_computes(embedded_job,
                                                          tiny_demo):
  job, out = embedded_job
  manifest = job.manifest
  assert manifest.embedding.params == PARAMS
  assert manifest.embedding_size == PARAMS.output_size == 612
  records = read_records(out, 'test', manifest)
  assert records[schema.EMBEDDING].shape == (len(records[schema.NOTE_STR]),
                                             612)
  model = embedding.build_embedding_model(
      musicnn_weights.read_weights(PARAMS.model_name), PARAMS)
  names = [n.decode() for n in records[schema.NOTE_STR][:16]]
  clips = np.stack([audio_decoding.decode_clip(
      (tiny_demo / 'nsynth-test' / 'audio' / f'{n}.wav').read_bytes(),
      feature_params.DEFAULT_PARAMS) for n in names])
  expected = model(clips).numpy()
  scale = np.abs(expected).max()
  np.testing.assert_allclose(records[schema.EMBEDDING][:16], expected,
                             atol=1e-5 * scale)


def test_the_manifest_names_the_weights_and_their_statistics(embedded_job):
  job, out = embedded_job
  manifest = manifest_lib.read(str(out))
  assert manifest.embedding == job.manifest.embedding
  weights = musicnn_weights.read_weights(PARAMS.model_name)
  assert manifest.embedding.weights_sha256 == musicnn_weights.weights_sha256(
      weights)
  train = read_records(out, 'train', manifest)[schema.EMBEDDING].astype(
      np.float64)
  normalization = manifest.embedding.normalization
  assert normalization.split == 'train'
  assert normalization.num_frames == len(train)
  np.testing.assert_allclose(normalization.mean, train.mean(0), rtol=1e-6,
                             atol=1e-9)
  np.testing.assert_allclose(normalization.std, train.std(0), rtol=1e-5,
                             atol=1e-9)


def test_no_embedding_when_asked_for_none(tiny_demo, tmp_path):
  job = nsynth_tfrecords.run([f'--input={tiny_demo / "nsynth-test"}',
                              f'--output_dir={tmp_path}', '--embedding=none'])
  assert job.manifest.embedding is None
  records = read_records(tmp_path, 'test', job.manifest)
  assert schema.EMBEDDING not in records


def test_missing_weights_are_one_line_before_any_work(tiny_demo, tmp_path,
                                                      monkeypatch):
  def not_installed(model_name, prefix=None):
    raise musicnn_weights.MusicnnWeightsError(
        f'the musicnn weights are not installed: '
        f'{musicnn_weights.INSTALL_HINT}')
  monkeypatch.setattr(musicnn_weights, 'read_weights', not_installed)
  out = tmp_path / 'out'
  with pytest.raises(job_lib.JobInputError) as error:
    nsynth_tfrecords.run([f'--input={tiny_demo / "nsynth-test"}',
                          f'--output_dir={out}'])
  assert str(error.value) == (
      '--embedding=MSD_musicnn: the musicnn weights are not installed: pip '
      'install --no-deps musicnn==0.1.0 (or pass --embedding=none)')
  assert not out.exists()
