"""The Beam job writes pretrained representations beside the MFCCs.

Checked against each representation's own model run apart from the job, on
the same decoded clips; the manifest names the weights (their SHA-256) and
holds the training split's statistics, checked against NumPy. Two
representations are two keys of the same records.
"""

import glob
import os
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from beam_pipelines import nsynth_tfrecords
from nsynth_contracts import audio_decoding
from nsynth_contracts import feature_params
from nsynth_contracts import manifest as manifest_lib
from nsynth_contracts import musicnn_representation
from nsynth_contracts import representation
from nsynth_contracts import schema

# Every test runs the whole Beam job, the networks included.
pytestmark = pytest.mark.slow

DEFAULT = musicnn_representation.DEFAULT
SECOND = musicnn_representation.MusicnnRepresentation(
    model_name='MSD_musicnn', layer='temporal')


def read_records(out, split, manifest):
  files = sorted(glob.glob(os.path.join(glob.escape(str(out)),
                                        f'{split}-*.tfrecord.gz')))
  records = tf.data.TFRecordDataset(files, compression_type='GZIP').batch(512)
  parsed = [schema.parse_batch(
      b, manifest.mfcc_shape,
      representation_sizes=manifest.representation_sizes) for b in records]
  return {key: np.concatenate([p[key].numpy() for p in parsed])
          for key in parsed[0]}


@pytest.fixture(scope='module')
def two_representations(tiny_demo, tmp_path_factory):
  """The default representation and MSD's temporal maps, one job."""
  out = tmp_path_factory.mktemp('represented')
  inputs = ','.join(str(tiny_demo / f'nsynth-{s}') for s in ('train', 'test'))
  job = nsynth_tfrecords.run([
      f'--input={inputs}', f'--output_dir={out}',
      f'--embedding={DEFAULT.describe()},{SECOND.describe()}'])
  return job, pathlib.Path(job.dataset_dir)


def test_the_default_is_mtts_midend_with_four_statistics():
  assert DEFAULT.key == 'mtt_musicnn_midend'
  assert DEFAULT.size == 4 * 753


@pytest.mark.parametrize('heard', [DEFAULT, SECOND], ids=lambda r: r.key)
def test_records_hold_each_representation_its_model_computes(
    two_representations, tiny_demo, heard):
  job, out = two_representations
  manifest = job.manifest
  assert [r.representation for r in manifest.representations] == [DEFAULT,
                                                                   SECOND]
  assert manifest.representation_sizes == {DEFAULT.key: 3012,
                                           SECOND.key: 612}
  records = read_records(out, 'test', manifest)
  assert records[heard.key].shape == (len(records[schema.NOTE_STR]),
                                      heard.size)
  # In the arithmetic the workers computed in (auto: bfloat16 where this
  # CPU has it), which the manifest records.
  (used,) = manifest.representation_precision
  model = heard.build_model(heard.read_weights(), used)
  names = [n.decode() for n in records[schema.NOTE_STR][:16]]
  clips = np.stack([audio_decoding.decode_clip(
      (tiny_demo / 'nsynth-test' / 'audio' / f'{n}.wav').read_bytes(),
      feature_params.DEFAULT_PARAMS) for n in names])
  expected = model(clips).numpy()
  np.testing.assert_allclose(records[heard.key][:16], expected,
                             atol=1e-5 * np.abs(expected).max())


def test_the_manifest_names_the_weights_and_their_statistics(
    two_representations):
  job, out = two_representations
  manifest = manifest_lib.read(str(out))
  assert manifest.representations == job.manifest.representations
  train = read_records(out, 'train', manifest)
  for record in manifest.representations:
    assert record.weights_sha256 == representation.weights_sha256(
        record.representation.read_weights())
    values = train[record.key].astype(np.float64)
    assert record.normalization.split == 'train'
    assert record.normalization.num_frames == len(values)
    np.testing.assert_allclose(record.normalization.mean, values.mean(0),
                               rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(record.normalization.std, values.std(0),
                               rtol=1e-5, atol=1e-9)


def test_no_representation_when_asked_for_none(tiny_demo, tmp_path):
  job = nsynth_tfrecords.run([f'--input={tiny_demo / "nsynth-test"}',
                              f'--output_dir={tmp_path}', '--embedding=none'])
  assert job.manifest.representations == ()
  records = read_records(job.dataset_dir, 'test', job.manifest)
  assert set(records) == set(schema.feature_spec((126, 128)))
