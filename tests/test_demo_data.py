"""The rendered demo data has NSynth's layout, schema and split guarantees."""

import hashlib
import json
import wave

import pytest

from demo_data import libraries
from demo_data import notes as demo_notes
from nsynth_contracts import labels
from tests.conftest import TINY_LIBRARIES

FIELDS = {'note': int, 'note_str': str, 'instrument': int,
          'instrument_str': str, 'pitch': int, 'velocity': int,
          'sample_rate': int, 'qualities': list, 'qualities_str': list,
          'instrument_family': int, 'instrument_family_str': str,
          'instrument_source': int, 'instrument_source_str': str}


def load(root, split):
  return json.loads((root / f'nsynth-{split}' / 'examples.json').read_text())


def test_every_entry_has_nsynth_fields_and_a_matching_wav(tiny_demo):
  for split in demo_notes.SPLITS:
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
  entries = [e for s in demo_notes.SPLITS for e in load(tiny_demo, s).values()]
  assert {e['instrument_family_str'] for e in entries} == set(
      labels.NSYNTH_FAMILIES)
  assert {e['instrument_source_str'] for e in entries} == set(
      labels.NSYNTH_SOURCES)


def test_valid_and_test_instruments_never_appear_in_train(tiny_demo):
  instruments = {s: {e['instrument'] for e in load(tiny_demo, s).values()}
                 for s in demo_notes.SPLITS}
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
  demo_notes.render_dataset(str(tmp_path / 'a'), 36, [127], TINY_LIBRARIES)
  demo_notes.render_dataset(str(tmp_path / 'b'), 36, [127], TINY_LIBRARIES)
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
    demo_notes.render_dataset(str(tmp_path), **kwargs)


def test_each_library_and_program_is_one_instrument_named_after_its_library(
    tiny_demo):
  entries = [e for s in demo_notes.SPLITS for e in load(tiny_demo, s).values()]
  assert {e['library'] for e in entries} == set(TINY_LIBRARIES)
  for entry in entries:
    family, source, library, number = entry['instrument_str'].rsplit('_', 3)
    assert (family, source, library) == (entry['instrument_family_str'],
                                         entry['instrument_source_str'],
                                         entry['library'])
    assert number.isdigit()
  ids = {}
  for entry in entries:
    ids.setdefault(entry['instrument'], set()).add(entry['instrument_str'])
  assert all(len(names) == 1 for names in ids.values())


def test_a_program_is_in_the_same_split_in_every_library():
  """The General MIDI libraries share samples: a program heard in train in
  one library must not be tested in another."""
  split_of = {}
  for instrument in demo_notes.assign_instruments(
      [library.name for library in libraries.LIBRARIES]):
    if instrument.library == 'opl3':  # its own, synthetic-only groups
      continue
    split_of.setdefault((instrument.gm.program, instrument.gm.source),
                        set()).add(instrument.split)
  assert all(len(splits) == 1 for splits in split_of.values())


def test_a_missing_library_asked_for_by_name_says_how_to_install_it(
    tmp_path, monkeypatch):
  monkeypatch.setattr(libraries.SampleLibrary, 'path', lambda self: None)
  with pytest.raises(libraries.LibraryMissingError,
                     match='apt-get install csound-soundfont'):
    demo_notes.render_dataset(str(tmp_path), 36, [127], ['sf_gmbank'])
  with pytest.raises(libraries.LibraryMissingError, match='unknown'):
    demo_notes.render_dataset(str(tmp_path), 36, [127], ['fluidr3'])
