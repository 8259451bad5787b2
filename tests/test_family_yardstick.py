"""The families yardstick (benchmarks.family_yardstick) on a small made-up
bank: what a training set names, and that no probe trains on a tested
note's recording."""

import numpy as np
import pytest

from benchmarks import family_sources
from benchmarks import family_yardstick as fy


def _bank() -> family_sources.Bank:
  """Two sample libraries sharing one recording (lib_a's 000 is lib_b's
  000) and a synthesis family of two models, two draws each."""
  rows = []
  for library in ('lib_a', 'lib_b'):
    for number, family in enumerate(('guitar', 'organ', 'guitar', 'organ')):
      for pitch in (48, 52, 56, 60):
        rows.append((family, f'{family}_acoustic_{library}_{number:03d}',
                     library, f'gm{number}', pitch))
  number = 0
  for model, family in (('Pluck', 'guitar'), ('Pipe', 'organ')):
    for _ in range(2):
      for pitch in (40, 44, 48, 52, 56, 60):
        rows.append((family, f'{family}_acoustic_synth_{number:03d}',
                     'synth', model, pitch))
      number += 1
  rng = np.random.default_rng(0)
  labels = np.array([family_sources.FAMILIES.index(r[0]) for r in rows])
  # Separable features: each family its own direction, plus noise.
  features = (np.eye(9)[labels] * 10 + rng.normal(size=(len(rows), 9))
              ).astype(np.float32)
  return family_sources.Bank(
      features=features, label=labels,
      instrument=np.array([r[1] for r in rows]),
      source=np.array([r[2] for r in rows]),
      model=np.array([r[3] for r in rows]),
      pitch=np.array([r[4] for r in rows]),
      velocity=np.full(len(rows), 100), split=np.full(len(rows), 'train'))


@pytest.fixture
def yardstick():
  same = {'guitar_acoustic_lib_a_000': {'guitar_acoustic_lib_b_000'},
          'guitar_acoustic_lib_b_000': {'guitar_acoustic_lib_a_000'}}
  bank = _bank()
  return fy.Yardstick(bank, ('lib_a', 'lib_b'), same,
                      heldout=np.zeros(len(bank.label), bool), folds=2)


def test_a_set_is_parsed_from_its_terms():
  assert fy.TrainingSet.parse('none') == fy.TrainingSet()
  training = fy.TrainingSet.parse('stk:6x16*0.5+faust', c=0.03)
  assert training == fy.TrainingSet(
      (fy.Added('stk', 6, 16, 0.5), fy.Added('faust')), 0.03)


def test_a_share_takes_the_first_draws_and_every_kth_pitch(yardstick):
  bank = yardstick.bank
  rows = yardstick.added_rows(fy.Added('synth', instruments=1, pitch_step=8))
  # One draw of each model, every other of its pitches (rendered every 4).
  assert set(bank.instrument[rows]) == {'guitar_acoustic_synth_000',
                                        'organ_acoustic_synth_002'}
  assert sorted(set(bank.pitch[rows])) == [40, 48, 56]


def test_no_probe_trains_on_a_tested_recording(yardstick, monkeypatch):
  trained = []
  def spy(x, y, weight, tests, c):
    trained.append(x)
    return [np.zeros(len(t), int) for t in tests]
  monkeypatch.setattr(fy, 'fit_predict', spy)
  bank = yardstick.bank
  scored = yardstick.library_out(fy.TrainingSet.parse('synth*0.5'))
  assert len(trained) == 2 and len(scored.tested) == 32
  tested_a = bank.features[bank.source == 'lib_a']
  twin_b = bank.features[bank.instrument == 'guitar_acoustic_lib_b_000']
  # Testing lib_a: lib_b trains, less the twin of lib_a's 000.
  assert not any((trained[0] == row).all(1).any() for row in tested_a)
  assert not any((trained[0] == row).all(1).any() for row in twin_b)
  rows, weight = yardstick.training_rows(fy.TrainingSet.parse('synth*0.5'),
                                          set())
  assert set(weight[bank.source[rows] == 'synth']) == {0.5}


def test_the_probe_learns_the_families_and_a_gain_is_paired(yardstick):
  bank = yardstick.bank
  base = yardstick.recordings_out(fy.TrainingSet())
  more = yardstick.recordings_out(fy.TrainingSet.parse('synth'))
  assert fy.accuracy(bank, base) > 0.9
  gain, error = fy.paired_gain(bank, base, more)
  assert abs(gain) <= 0.1 and error >= 0
  assert set(fy.recalls(bank, base)) == {'guitar', 'organ'}
