"""The rendered demo data has NSynth's layout, schema and split guarantees."""

import hashlib
import json
import wave

import pytest

from demo_data import render
from nsynth_contracts import labels

FIELDS = {'note': int, 'note_str': str, 'instrument': int,
          'instrument_str': str, 'pitch': int, 'velocity': int,
          'sample_rate': int, 'qualities': list, 'qualities_str': list,
          'instrument_family': int, 'instrument_family_str': str,
          'instrument_source': int, 'instrument_source_str': str}


def load(root, split):
  return json.loads((root / f'nsynth-{split}' / 'examples.json').read_text())


def test_every_entry_has_nsynth_fields_and_a_matching_wav(tiny_demo):
  for split in render.SPLITS:
    for key, entry in load(tiny_demo, split).items():
      assert entry['note_str'] == key
      for field, kind in FIELDS.items():
        assert isinstance(entry[field], kind), (key, field)
      assert len(entry['qualities']) == 10
      assert labels.NSYNTH_FAMILIES[entry['instrument_family']] == \
          entry['instrument_family_str']
      assert key == (f'{entry["instrument_str"]}-{entry["pitch"]:03d}-'
                     f'{entry["velocity"]:03d}')
      with wave.open(str(tiny_demo / f'nsynth-{split}' / 'audio' /
                         f'{key}.wav')) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(),
                w.getnframes()) == (1, 2, 16000, 64000)


def test_all_families_and_sources_are_present(tiny_demo):
  entries = [e for s in render.SPLITS for e in load(tiny_demo, s).values()]
  assert {e['instrument_family_str'] for e in entries} == set(
      labels.NSYNTH_FAMILIES)
  assert {e['instrument_source_str'] for e in entries} == set(
      labels.NSYNTH_SOURCES)


def test_valid_and_test_instruments_never_appear_in_train(tiny_demo):
  instruments = {s: {e['instrument'] for e in load(tiny_demo, s).values()}
                 for s in render.SPLITS}
  assert not instruments['train'] & instruments['valid']
  assert not instruments['train'] & instruments['test']
  assert not instruments['valid'] & instruments['test']
  kept = [e for e in load(tiny_demo, 'test').values()
          if e['instrument_source_str'] != 'synthetic']
  assert {e['instrument_family_str'] for e in kept} >= set(
      labels.LabelVocabulary.from_filters().families)


def test_rendering_is_deterministic(tmp_path):
  def digest(root):
    h = hashlib.sha256()
    for path in sorted(root.rglob('*')):
      if path.is_file():
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()
  render.render_dataset(str(tmp_path / 'a'), 36, [127])
  render.render_dataset(str(tmp_path / 'b'), 36, [127])
  assert digest(tmp_path / 'a') == digest(tmp_path / 'b')


def test_notes_are_held_then_released(tiny_demo):
  import numpy as np

  from tests.conftest import read_demo_wav
  entries = load(tiny_demo, 'train')
  organ = next(k for k, e in entries.items()
               if e['instrument_family_str'] == 'organ')
  y = read_demo_wav(tiny_demo / 'nsynth-train' / 'audio' / f'{organ}.wav')
  held = np.sqrt(np.mean(y[16000:47000]**2))
  tail = np.sqrt(np.mean(y[-4000:]**2))
  assert held > 0.01 and tail < held / 10  # sustained, then it stops


@pytest.mark.parametrize('kwargs,message', [
    ({'pitch_step': 0}, 'pitch_step'), ({'velocities': [64]}, 'velocities')])
def test_bad_sizes_are_refused(tmp_path, kwargs, message):
  with pytest.raises(ValueError, match=message):
    render.render_dataset(str(tmp_path), **kwargs)
