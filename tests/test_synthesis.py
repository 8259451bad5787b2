"""The synthesis families: every model plays in tune, every note is checked,
and each family is an NSynth-layout dataset with instrument-disjoint splits."""

import dataclasses
import hashlib
import json
import wave

import numpy as np
import pytest

from demo_data import faust_models
from demo_data import note_checks
from demo_data import notes as demo_notes
from demo_data import synthesis
from nsynth_contracts import labels
from tests import synthesis_workers
from tests.conftest import read_demo_wav
from tests.test_demo_data import FIELDS

SR = 16000
# Few notes per instrument: a model's instrument renders in well under 1 s.
FEW = synthesis.SynthesisSizes(instruments_per_model=3, pitch_step=24,
                               velocities=(100,))


def pyin_f0_hz(y: np.ndarray) -> float:
  """An f0 estimate by another method than the checks' YIN: probabilistic
  YIN with its pitch-tracking HMM (librosa.pyin) over the held 3 s, the
  median of the frames within 20 dB of the loudest."""
  import librosa
  held = y[:SR * 3].astype(np.float32)
  f0, _, _ = librosa.pyin(held, fmin=30, fmax=4200, sr=SR, frame_length=2048,
                          hop_length=1024, fill_na=None, center=False)
  rms = librosa.feature.rms(y=held, frame_length=2048, hop_length=1024,
                            center=False)[0][:len(f0)]
  return float(np.median(f0[rms >= rms.max() / 10]))


def _all_models():
  return [pytest.param(family, model, id=f'{family}-{model.name}')
          for family in synthesis.FAMILIES
          for model in synthesis.family_models(family)]


def _check_plays_in_tune(family, model):
  # In a process of its own: this session has imported TensorFlow, which
  # Faust's toolkit cannot share a process with.
  ((_, _, drawn, _),) = synthesis.draw_isolated(family, [(model.name, 0)],
                                                FEW)
  assert drawn is not None, f'no draw of {model.name} passed the checks'
  assert model.family in labels.NSYNTH_FAMILIES
  for pitch, velocity, waveform in drawn[1]:
    assert waveform.shape == (64000,) and np.all(np.isfinite(waveform))
    assert np.max(np.abs(waveform)) == pytest.approx(
        note_checks.velocity_peak(velocity), rel=1e-5)
    f0 = pyin_f0_hz(waveform)
    # In tune within a semitone by an estimate the checks do not make
    # (their 50 cents rest on plain YIN over the whole held part), where
    # the model sounds: an organ's 16' an octave below the key.
    sounding = pitch + 12 * model.sounding_octave
    assert abs(note_checks.cents_off(f0, sounding)) < 100, (model.name, pitch)


# pyin takes about 0.3 s a note: the sweep over every model is slow.
@pytest.mark.slow
@pytest.mark.parametrize('family,model', _all_models())
def test_every_model_plays_finite_sounding_notes_at_their_pitch(family, model):
  _check_plays_in_tune(family, model)


@pytest.mark.parametrize('family,name', [('stk', 'Brass'),
                                         ('faust', 'DrawbarOrgan')])
def test_a_brass_and_an_organ_play_in_tune(family, name):
  _check_plays_in_tune(family, synthesis.family_model(family, name))


def test_an_organ_sounding_from_its_16_foot_is_checked_an_octave_down():
  # General MIDI's drawbar organs are registered from the 16': their
  # lowest partial is the octave below the key, where YIN hears them.
  (raw,) = synthesis_workers.render('faust', 'TonewheelOrgan16', 0,
                                    [(60, 100)])
  assert note_checks.note_problem(raw, 48) is None
  assert note_checks.note_problem(raw, 60) == 'off pitch'
  ((_, _, drawn, checks),) = synthesis.draw_isolated(
      'faust', [('TonewheelOrgan16', 0)], FEW)
  assert drawn is not None and checks.problems == {}


def test_faust_refuses_a_process_that_has_imported_tensorflow():
  import tensorflow  # noqa: F401  (the refusal's condition)
  model = synthesis.family_model('faust', 'DrawbarOrgan')
  with pytest.raises(faust_models.ToolkitConflictError,
                     match='DrawbarOrgan.*draw_isolated'):
    model.render(model.draw(np.random.default_rng(0)), 60, 100)


def _harmonic_shares(waveform, pitch, harmonics=8):
  """Each of the first harmonics' share of their summed power over the
  held part after the attack."""
  segment = waveform[SR // 2:SR * 5 // 2] * np.hanning(SR * 2)
  power = np.abs(np.fft.rfft(segment)) ** 2
  hz = np.fft.rfftfreq(len(segment), 1 / SR)
  f0 = note_checks.midi_hz(pitch)
  shares = np.array([power[np.abs(hz - k * f0) < 0.03 * f0].sum()
                     for k in range(1, harmonics + 1)])
  return shares / shares.sum()


@pytest.mark.parametrize('family,name', [('faust', 'AdditiveBrass'),
                                         ('stk', 'Brass')])
def test_brass_leads_with_harmonics_above_its_fundamental(family, name):
  # Sampled trumpets, trombones and horns put 2-22% of their harmonic
  # power in the fundamental; a brass model whose fundamental dominates is
  # heard as a flute or a reed.
  shares = [_harmonic_shares(waveform, 57)[0]
            for seed in range(4)
            for waveform in synthesis_workers.render(family, name, seed,
                                                     [(57, 100)])]
  assert np.median(shares) < 0.5, shares


def test_a_plucked_bass_keeps_its_fundamental():
  # The pluck's low-pass at the fundamental makes harmonic k fall as
  # 1/k^2, as a plucked string's triangle does: the fundamental leads the
  # fourth harmonic at every pitch (a noise burst left some without).
  pitches = (40, 47, 52, 59, 64)
  waveforms = synthesis_workers.render(
      'faust', 'ElectricBass', 0, [(pitch, 100) for pitch in pitches],
      sliders=(('pluck_bright', 1.0), ('pluck_position', 0.3),
               ('sustain_t60_s', 4.0), ('release_t60_s', 0.1),
               ('pickup_position', 0.3), ('tone_hz', 1500.0),
               ('shelf_db', 6.0)))
  for pitch, waveform in zip(pitches, waveforms):
    shares = _harmonic_shares(waveform, pitch)
    assert shares[0] > shares[3], (pitch, shares)


def test_a_failing_note_is_named():
  t = np.arange(64000) / SR
  in_tune = 0.5 * np.sin(2 * np.pi * note_checks.midi_hz(60) * t)
  assert note_checks.note_problem(in_tune, 60) is None
  assert note_checks.note_problem(in_tune, 67) == 'off pitch'   # a fifth
  assert note_checks.note_problem(in_tune, 48) == 'off pitch'   # an octave
  assert note_checks.note_problem(in_tune * 1e-5, 60) == 'no sound'
  broken = in_tune.copy()
  broken[100] = np.nan
  assert note_checks.note_problem(broken, 60) == 'not finite'


@dataclasses.dataclass(frozen=True)
class _Sine:
  """A model whose draw decides whether it plays in tune."""
  detune_semitones: float


class _ToyModel:
  """Plays an octave off for its first `bad_draws` draws, then in tune."""
  name = 'Toy'
  family = 'organ'
  source = 'electronic'
  pitch_range = (48, 72)
  sounding_octave = 0

  def __init__(self, bad_draws: int):
    self.bad_draws = bad_draws
    self.draws = 0

  def draw(self, rng):
    self.draws += 1
    return _Sine(12.0 if self.draws <= self.bad_draws else 0.0)

  def render(self, controls, pitch, velocity):
    t = np.arange(64000) / SR
    hz = note_checks.midi_hz(pitch + controls.detune_semitones)
    return 0.3 * np.sin(2 * np.pi * hz * t) * (t < 3.0)


def test_a_draw_that_plays_off_pitch_is_rejected_and_redrawn():
  checks = synthesis.ModelChecks()
  drawn = synthesis.draw_instrument('test', _ToyModel(bad_draws=2), 0, FEW,
                                    checks)
  assert drawn is not None and drawn[0] == _Sine(0.0)
  assert (checks.draws, checks.rejected_draws) == (3, 2)
  assert checks.problems == {'off pitch': 2}   # each bad draw stops at once
  never = synthesis.ModelChecks()
  assert synthesis.draw_instrument('test', _ToyModel(bad_draws=99), 0, FEW,
                                   never) is None
  assert never.rejected_draws == FEW.max_draws


@pytest.fixture(scope='module')
def tiny_stk(tmp_path_factory):
  """Three fast STK models, three instruments each, rendered twice."""
  roots = [tmp_path_factory.mktemp(f'stk{k}') for k in range(2)]
  keep = {'Clarinet', 'Plucked', 'BeeThree'}
  with pytest.MonkeyPatch.context() as patch:
    models = [m for m in synthesis.family_models('stk') if m.name in keep]
    patch.setattr(synthesis, 'family_models', lambda name: models)
    for root in roots:
      synthesis.render_family(str(root), 'stk', FEW)
  return [root / 'stk' for root in roots]


def _load(root, split):
  return json.loads((root / f'nsynth-{split}' / 'examples.json').read_text())


def test_same_seed_renders_the_same_bytes(tiny_stk):
  def digest(root):
    h = hashlib.sha256()
    for path in sorted(root.rglob('*')):
      if path.is_file():
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()
  assert digest(tiny_stk[0]) == digest(tiny_stk[1])


def test_splits_are_instrument_disjoint_and_hear_every_model(tiny_stk):
  entries = {split: _load(tiny_stk[0], split) for split in demo_notes.SPLITS}
  instruments = {split: {e['instrument'] for e in es.values()}
                 for split, es in entries.items()}
  assert not instruments['train'] & instruments['valid']
  assert not instruments['train'] & instruments['test']
  assert not instruments['valid'] & instruments['test']
  for split, es in entries.items():
    assert {e['synthesis_model'] for e in es.values()} == {
        'Clarinet', 'Plucked', 'BeeThree'}, split
  checks = json.loads((tiny_stk[0] / 'checks.json').read_text())
  assert set(checks) == {'Clarinet', 'Plucked', 'BeeThree'}


def test_entries_have_nsynth_schema_and_wavs(tiny_stk):
  for split in demo_notes.SPLITS:
    for key, entry in _load(tiny_stk[0], split).items():
      for field, kind in FIELDS.items():
        assert isinstance(entry[field], kind), (key, field)
      assert entry['library'] == 'stk'
      assert labels.NSYNTH_FAMILIES[entry['instrument_family']] == \
          entry['instrument_family_str']
      assert key == (f'{entry["instrument_str"]}-{entry["pitch"]:03d}-'
                     f'{entry["velocity"]:03d}')
      assert entry['instrument'] >= synthesis.FAMILIES[
          'stk'].first_instrument_id
      path = tiny_stk[0] / f'nsynth-{split}' / 'audio' / f'{key}.wav'
      with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(),
                w.getnframes()) == (1, 2, 16000, 64000)


def test_louder_velocities_are_never_quieter():
  peaks = [note_checks.velocity_peak(v) for v in demo_notes.NSYNTH_VELOCITIES]
  assert peaks == sorted(peaks) and len(set(peaks)) == len(peaks)
  model = synthesis.family_model('stk', 'Rhodey')
  sizes = dataclasses.replace(FEW, velocities=demo_notes.NSYNTH_VELOCITIES,
                              pitch_step=48)
  ((_, _, drawn, _),) = synthesis.draw_isolated('stk', [(model.name, 0)],
                                                sizes)
  by_pitch = {}
  for pitch, velocity, waveform in drawn[1]:
    rms = float(np.sqrt(np.mean(waveform[:SR] ** 2)))
    by_pitch.setdefault(pitch, []).append((velocity, rms))
  for pitch, levels in by_pitch.items():
    rms = [r for _, r in sorted(levels)]
    assert rms == sorted(rms), pitch


def test_a_missing_toolkit_says_how_to_install_it(monkeypatch):
  import importlib.util
  monkeypatch.setattr(importlib.util, 'find_spec', lambda name: None)
  with pytest.raises(synthesis.SynthesisMissingError,
                     match='pip install dawdreamer==0.9.0'):
    synthesis.family_models('faust')
  with pytest.raises(synthesis.SynthesisMissingError, match='unknown'):
    synthesis.family_models('csound')


def test_the_checks_are_compiled_before_the_workers_start(monkeypatch):
  # Two workers compiling librosa's YIN at once left numba a cache that
  # crashed every later process loading it: the caller compiles it first.
  calls = []
  monkeypatch.setattr(note_checks, 'compile_checks',
                      lambda: calls.append('compiled'))
  list(synthesis.draw_isolated('stk', [('Brass', 0)], FEW))
  assert calls == ['compiled']


def test_an_unknown_model_is_named():
  with pytest.raises(synthesis.SynthesisMissingError,
                     match="--synthesis=stk has no model 'Theremin'"):
    synthesis.family_model('stk', 'Theremin')


def test_the_written_notes_are_the_checked_ones(tiny_stk):
  for key, entry in _load(tiny_stk[0], 'train').items():
    y = read_demo_wav(tiny_stk[0] / 'nsynth-train' / 'audio' / f'{key}.wav')
    assert note_checks.note_problem(y, entry['pitch']) is None, key
