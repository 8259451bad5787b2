"""The models' own layers and the default ensemble, against independent
references (librosa, numpy, Keras' own cross-entropy)."""

import keras
import librosa
import numpy as np
import pytest

from nsynth_contracts import manifest as manifest_lib
from trainer import layers
from trainer import models
from trainer import recipes

SHAPE = (126, 20)


def _mfccs(n=6, seed=0):
  return np.random.default_rng(seed).normal(size=(n, *SHAPE)).astype(
      np.float32)


def _normalize():
  return keras.layers.Normalization(axis=-1, mean=np.zeros(SHAPE[1]),
                                    variance=np.ones(SHAPE[1]))


def test_deltas_are_librosas_width_5_deltas_with_the_edges_repeated():
  x = _mfccs(3)
  out = layers.AppendDeltas()(x).numpy()
  reference = librosa.feature.delta(x, width=5, axis=1, mode='nearest')
  np.testing.assert_allclose(out[..., :20], x)
  np.testing.assert_allclose(out[..., 20:], reference, atol=1e-5)


def test_summary_statistics_are_numpys():
  x = _mfccs(3)
  expected = np.concatenate([x.mean(1), x.std(1), x.max(1), x.min(1),
                             np.diff(x, axis=1).std(1)], axis=1)
  np.testing.assert_allclose(layers.SummaryStatistics()(x).numpy(), expected,
                             atol=1e-5)


def test_specaugment_only_masks_in_training_and_only_within_its_bounds():
  x = _mfccs(64) + 10.0  # so no value is zero unless masked
  mask = layers.SpecAugment(seed=3)
  np.testing.assert_array_equal(mask(x, training=False).numpy(), x)
  out = mask(x, training=True).numpy()
  zeroed = out == 0
  np.testing.assert_array_equal(out[~zeroed], x[~zeroed])
  assert zeroed.any()
  for note in zeroed:
    whole_frames = note.all(axis=1)
    whole_coefficients = note.all(axis=0)
    # Every zero lies in a masked frame or a masked coefficient.
    assert np.all(note == (whole_frames[:, None] | whole_coefficients[None, :]))
    # Two masks of at most 15 frames, two of at most 3 coefficients.
    assert whole_frames.sum() <= 30
    assert whole_coefficients.sum() <= 6


def test_specaugment_with_a_seed_masks_the_same_way_each_time():
  x = _mfccs(8) + 10.0
  first = layers.SpecAugment(seed=7)(x, training=True).numpy()
  again = layers.SpecAugment(seed=7)(x, training=True).numpy()
  np.testing.assert_array_equal(first, again)


def test_the_ensemble_predicts_its_members_mean_probability():
  model = models.timbre_ensemble(SHAPE, 9, _normalize())
  x = _mfccs()
  each = np.stack([m.predict(x, verbose=0) for m in model.members])
  assert len(model.members) == 4
  assert {m.name for m in model.members} == {'tcn_a', 'tcn_b', 'mlp_a',
                                             'mlp_b'}
  np.testing.assert_allclose(model.predict(x, verbose=0), each.mean(0),
                             atol=1e-6)


def test_the_ensemble_learns_from_each_members_own_loss():
  model = models.timbre_ensemble(SHAPE, 9, _normalize())
  model.compile(optimizer='adam', loss=keras.losses.CategoricalCrossentropy())
  x = _mfccs()
  y = np.eye(9, dtype=np.float32)[[0, 1, 2, 3, 4, 5]]
  # As a training or test step does: the call, then the loss.
  average = model(x, training=False)
  loss = float(model.compute_loss(x, y, average, training=False))

  def cross_entropy(p):
    return float(np.mean(-np.log(np.sum(y * np.asarray(p), axis=1))))

  own = np.mean([cross_entropy(m(x, training=False)) for m in model.members])
  assert loss == pytest.approx(own, rel=1e-5)
  assert loss != pytest.approx(cross_entropy(average), rel=1e-3)


def test_an_ensemble_needs_two_members():
  with pytest.raises(ValueError, match='at least two members'):
    layers.AveragedEnsemble([models.stats_mlp(SHAPE, 9, _normalize())])


@pytest.mark.parametrize('name', ['timbre_ensemble', 'stats_mlp'])
def test_a_saved_model_loads_and_predicts_the_same(name, tiny_tfrecords,
                                                   tmp_path):
  manifest = manifest_lib.read(str(tiny_tfrecords))
  model = recipes.build(name, manifest)
  model.compile(optimizer='adam', loss='categorical_crossentropy')
  x = np.random.default_rng(0).normal(
      size=(4, *manifest.mfcc_shape)).astype(np.float32)
  model.fit(x, np.eye(9, dtype=np.float32)[:4], epochs=1, verbose=0)
  path = str(tmp_path / 'model.keras')
  model.save(path)
  loaded = models.load(path)
  assert type(loaded) is type(model)
  np.testing.assert_allclose(loaded.predict(x, verbose=0),
                             model.predict(x, verbose=0), atol=1e-6)
