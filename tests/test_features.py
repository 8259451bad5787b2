"""The feature contract against librosa, the independent reference."""

import glob
import json

import librosa
import numpy as np
import pytest
import scipy.fft
import tensorflow as tf

from nsynth_common import dataclass_json
from nsynth_contracts import features
from tests.conftest import read_demo_wav

TOLERANCE = 1e-2  # absolute, in MFCC units (dB-scaled DCT coefficients)
PARAMS = features.DEFAULT_PARAMS


def librosa_mfcc(y: np.ndarray, params=PARAMS) -> np.ndarray:
  """librosa's MFCCs (the seed recipe's computation, with params' coefficient
  count), transposed to [frames, coefficients]."""
  return librosa.feature.mfcc(y=np.asarray(y, np.float32), sr=16000,
                              n_mfcc=params.num_mfcc).T


def ours(y: np.ndarray, jit_compile: bool = False,
         params=PARAMS) -> np.ndarray:
  fn = tf.function(lambda w: features.waveform_to_mfcc(w, params),
                   jit_compile=jit_compile)
  return fn(tf.constant(y[np.newaxis], tf.float32))[0].numpy()


def test_shape_is_126_frames_by_128_coefficients():
  assert PARAMS.mfcc_shape == (126, 128)
  assert ours(np.zeros(64000)).shape == (126, 128)


@pytest.mark.parametrize('jit_compile', [False, True])
def test_matches_librosa_on_demo_notes(tiny_demo, jit_compile):
  paths = sorted(glob.glob(str(tiny_demo / 'nsynth-*' / 'audio' / '*.wav')))
  # Every family and several pitches: a spread of spectra and loudness.
  for path in paths[::max(1, len(paths) // 12)]:
    y = read_demo_wav(path).astype(np.float32)
    np.testing.assert_allclose(ours(y, jit_compile), librosa_mfcc(y),
                               atol=TOLERANCE, err_msg=path)


def test_the_blogs_20_coefficients_match_librosa(tiny_demo):
  """nsynth-tfrecords --num_mfcc=20: librosa.feature.mfcc's default, the
  seed recipe's features, for the reproduction of its figures."""
  blog = features.FeatureParams(num_mfcc=20)
  # 20 is librosa's own default, what the seed recipe got without asking.
  assert librosa.feature.mfcc(y=np.zeros(64000, np.float32), sr=16000).shape == (
      20, 126)
  paths = sorted(glob.glob(str(tiny_demo / 'nsynth-*' / 'audio' / '*.wav')))
  for path in paths[::max(1, len(paths) // 4)]:
    y = read_demo_wav(path).astype(np.float32)
    np.testing.assert_allclose(ours(y, params=blog), librosa_mfcc(y, blog),
                               atol=TOLERANCE, err_msg=path)


def test_silence_gives_finite_features_equal_to_librosa():
  silence = np.zeros(64000, np.float32)
  result = ours(silence)
  assert np.all(np.isfinite(result))
  np.testing.assert_allclose(result, librosa_mfcc(silence), atol=TOLERANCE)


@pytest.mark.parametrize('num_samples', [1, 8000, 63999, 64001, 96000])
def test_other_lengths_are_padded_or_trimmed_to_four_seconds(num_samples):
  rng = np.random.default_rng(num_samples)
  y = (0.3 * rng.standard_normal(num_samples)).astype(np.float32)
  clip = np.zeros(64000, np.float32)
  clip[:min(num_samples, 64000)] = y[:64000]
  np.testing.assert_allclose(ours(y), librosa_mfcc(clip), atol=TOLERANCE)


def test_a_batch_equals_notes_one_at_a_time():
  rng = np.random.default_rng(0)
  batch = (0.2 * rng.standard_normal((3, 64000))).astype(np.float32)
  batch[1] = 0.0  # top_db is per clip: silence must not affect its neighbours.
  together = features.waveform_to_mfcc(batch).numpy()
  for i in range(3):
    np.testing.assert_allclose(together[i], ours(batch[i]), atol=1e-4)


@pytest.mark.parametrize('frequency_hz', [220.0, 440.0, 1000.0, 3000.0])
def test_a_sines_energy_lands_in_the_mel_band_of_its_frequency(frequency_hz):
  """Read back from the MFCCs themselves: C orthonormal DCT coefficients
  give a smoothed log-mel spectrum (their transpose is the least-squares
  inverse), whose peak must sit at the sine's band. Band centres come from
  librosa, the independent reference."""
  t = np.arange(64000) / 16000.0
  sine = (0.5 * np.sin(2 * np.pi * frequency_hz * t)).astype(np.float32)
  mfcc = ours(sine)                                           # [T, C]
  basis = features.dct_ii_ortho_matrix(PARAMS.num_mel_bands,
                                       PARAMS.num_mfcc)       # [128, C]
  smoothed_log_mel = (mfcc[10:-10] @ basis.T).mean(axis=0)    # [128]
  centres = librosa.mel_frequencies(PARAMS.num_mel_bands + 2, fmin=0.0,
                                    fmax=8000.0)[1:-1]
  expected_band = int(np.argmin(np.abs(centres - frequency_hz)))
  # 20 coefficients resolve about 128 / 20 = 6 bands.
  assert abs(int(np.argmax(smoothed_log_mel)) - expected_band) <= 3


def test_grouped_mel_bands_cover_every_weight_of_the_dense_matrix():
  dense = features.slaney_mel_matrix()
  rebuilt = np.zeros_like(dense)
  band = 0
  for group in features.mel_band_groups():
    bands = group.weights.shape[1]
    rebuilt[group.first_bin:group.end_bin, band:band + bands] = group.weights
    band += bands
  assert band == PARAMS.num_mel_bands
  np.testing.assert_array_equal(rebuilt, dense)


def test_mel_matrix_is_librosas():
  np.testing.assert_allclose(features.slaney_mel_matrix().T,
                             librosa.filters.mel(sr=16000, n_fft=2048),
                             atol=1e-7)


def test_dct_matrix_is_scipys_orthonormal_dct_ii():
  x = np.random.default_rng(1).standard_normal((5, 128))
  expected = scipy.fft.dct(x, type=2, norm='ortho', axis=-1)[:, :20]
  np.testing.assert_allclose(x @ features.dct_ii_ortho_matrix(128, 20),
                             expected, atol=1e-4)


@pytest.mark.parametrize('num_samples', [0, 100, 64000, 70000])
def test_numpy_and_tensorflow_padding_agree(num_samples):
  y = np.arange(num_samples, dtype=np.float32) / 70000.0
  np.testing.assert_array_equal(
      features.pad_or_trim_numpy(y),
      features.pad_or_trim(y[np.newaxis])[0].numpy())


def test_params_round_trip_through_json():
  params = features.FeatureParams(num_mfcc=13)
  assert dataclass_json.from_json(features.FeatureParams, json.loads(
      json.dumps(dataclass_json.to_json(params)))) == params
  with pytest.raises(ValueError, match='bogus'):
    dataclass_json.from_json(features.FeatureParams, {'bogus': 1})
