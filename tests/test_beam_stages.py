"""The Beam job's stages, each alone, with TestPipeline and assert_that."""

import dataclasses
import json
import math

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that
from apache_beam.testing.util import equal_to

from beam_pipelines import accounting
from beam_pipelines import featurize
from beam_pipelines import local_runner
from beam_pipelines import reading
from beam_pipelines import selection
from beam_pipelines import splits
from beam_pipelines import statistics
from beam_pipelines.batches import FeaturizedBatch
from beam_pipelines.job_config import JobConfig
from nsynth_contracts import examples_json
from nsynth_contracts import features
from nsynth_contracts import labels
from nsynth_contracts import outcomes
from nsynth_contracts.outcomes import Kind
from nsynth_contracts.outcomes import OutcomeKey
from tests.conftest import wav_bytes

VOCABULARY = labels.LabelVocabulary.from_filters()


def pipeline():
  # The job's own local engine (no Prism download attempt, no lost output).
  return TestPipeline(runner=local_runner.LocalRunner())


def note(name='guitar_acoustic_000-060-100', family='guitar',
         source='acoustic', split='train', audio_path='/nonexistent.wav',
         library=''):
  instrument = name.split('-')[0]
  return examples_json.Note(
      note_str=name, instrument=0, instrument_str=instrument, pitch=60,
      velocity=100, family=family, source=source, audio_path=audio_path,
      split=split, library=library)


def config(**changes):
  return JobConfig(inputs=(), output_dir='', **changes)


def featurizer(batch_size=8):
  return featurize.Featurizer(features.DEFAULT_PARAMS, keep_audio=False,
                              batch_size=batch_size, jit_compile=True,
                              augment=featurize.augmentation.NO_AUGMENTATION,
                              train_split='train')


def test_read_split_validates_entries_and_dead_letters_the_bad(split_copy):
  directory = split_copy('valid')
  entries = json.loads((directory / 'examples.json').read_text())
  good = sorted(entries)
  entries['broken-001'] = {'note_str': 'broken-001'}
  mistyped = dict(entries[good[0]], note_str='mistyped-001', pitch='60')
  entries['mistyped-001'] = mistyped
  entries['kazoo-001'] = dict(entries[good[0]], note_str='kazoo-001',
                              instrument_family_str='kazoo')
  (directory / 'examples.json').write_text(json.dumps(entries))
  with pipeline() as p:
    read = p | reading.ReadNSynthSplit(str(directory), 'valid')
    assert_that(read[accounting.NOTES] | beam.Map(lambda n: n.note_str),
                equal_to(good), label='GoodNotes')
    assert_that(
        read[accounting.DEAD_LETTERS] | beam.Map(lambda d: (d.note_str,
                                                            d.kind)),
        equal_to([('broken-001', 'invalid_metadata'),
                  ('mistyped-001', 'invalid_metadata'),
                  ('kazoo-001', 'invalid_metadata')]), label='DeadLetters')


@pytest.mark.parametrize('entry_change,message', [
    ({'pitch': '60'}, "field 'pitch' should be int"),
    ({'pitch': True}, "field 'pitch' should be int"),
    ({'instrument_family_str': 'kazoo'}, "unknown instrument_family_str 'kazoo'"),
    ({'instrument_source_str': 'wooden'}, 'unknown instrument_source_str'),
    ({'velocity': 400}, 'not a MIDI velocity'),
    ({'note_str': 'other'}, 'keyed'),
])
def test_entry_errors_name_the_field(entry_change, message):
  entry = {'note_str': 'k', 'instrument': 1, 'instrument_str': 'x',
           'pitch': 60, 'velocity': 100, 'instrument_family_str': 'bass',
           'instrument_source_str': 'acoustic'}
  entry.update(entry_change)
  with pytest.raises(examples_json.EntryError, match=message):
    examples_json.note_from_entry('k', entry, '/d', 'train')


def test_missing_field_is_named():
  with pytest.raises(examples_json.EntryError, match="missing field 'pitch'"):
    examples_json.note_from_entry('k', {'note_str': 'k', 'instrument': 1,
                                        'instrument_str': 'x'}, '/d', 'train')


def test_filter_tags_each_note_with_the_first_filter_it_fails():
  notes = [note('a', 'guitar', 'acoustic'), note('b', 'vocal', 'acoustic'),
           note('c', 'synth_lead', 'synthetic'), note('d', 'vocal',
                                                      'synthetic')]
  with pipeline() as p:
    result = (p | beam.Create(notes) | beam.FlatMap(
        selection.select_note, config(kept_sources=('acoustic', 'electronic')),
        VOCABULARY).with_outputs(accounting.FILTERED, main=accounting.NOTES))
    assert_that(result[accounting.NOTES] | 'Kept' >> beam.Map(
        lambda n: n.note_str), equal_to(['a']), label='Kept')
    assert_that(result[accounting.FILTERED] | beam.Map(
        lambda f: (f.note.note_str, f.filter_name)),
                equal_to([('b', 'family'), ('c', 'source'), ('d', 'source')]),
                label='Filtered')


def test_cap_keeps_the_same_notes_per_split_and_family_every_time():
  notes = [note(f'guitar_acoustic_000-{i:03d}-100', 'guitar', split=split)
           for i in range(10) for split in ('train', 'valid')]
  notes += [note(f'bass_acoustic_000-{i:03d}-100', 'bass') for i in range(2)]
  def kept_by_hash(split):
    names = [n.note_str for n in notes
             if n.family == 'guitar' and n.split == split]
    return sorted(names, key=splits.unit_interval_hash)[:3]
  with pipeline() as p:
    capped = p | beam.Create(notes) | selection.CapPerFamily(3)
    assert_that(capped[accounting.NOTES] | beam.Map(
        lambda n: (n.split, n.note_str)),
                equal_to([('train', s) for s in kept_by_hash('train')] +
                         [('valid', s) for s in kept_by_hash('valid')] +
                         [('train', n.note_str) for n in notes
                          if n.family == 'bass']), label='Kept')
    assert_that(capped[accounting.FILTERED] | beam.combiners.Count.Globally(),
                equal_to([14]), label='CountCapped')


def test_featurize_dead_letters_bad_audio_and_keeps_the_good(tmp_path):
  t = np.arange(64000) / 16000.0
  tone = 0.5 * np.sin(2 * np.pi * 440 * t)
  (tmp_path / 'good.wav').write_bytes(wav_bytes(tone))
  (tmp_path / 'empty.wav').write_bytes(b'')
  (tmp_path / 'junk.wav').write_bytes(b'not a wav at all, just text')
  notes = [note('good', audio_path=str(tmp_path / 'good.wav')),
           note('empty', audio_path=str(tmp_path / 'empty.wav')),
           note('junk', audio_path=str(tmp_path / 'junk.wav')),
           note('missing', audio_path=str(tmp_path / 'missing.wav'))]
  stored = np.round(tone * 32768.0).clip(-32768, 32767) / 32768.0  # 16-bit
  expected_mfcc = features.waveform_to_mfcc(
      stored[np.newaxis].astype(np.float32))[0].numpy()

  def check_features(batches):
    (batch,) = batches  # The good note's batch; the bad ones left no row.
    assert [n.note_str for n in batch.notes] == ['good']
    assert batch.mfccs.shape == (1, *features.DEFAULT_PARAMS.mfcc_shape)
    np.testing.assert_allclose(batch.mfccs[0], expected_mfcc, atol=1e-3)
    assert batch.clips is None

  with pipeline() as p:
    result = p | beam.Create(notes) | featurize.FeaturizeNotes(featurizer())
    assert_that(result[accounting.NOTES], check_features, label='Features')
    assert_that(result[accounting.DEAD_LETTERS] | beam.Map(
        lambda d: (d.note_str, d.kind)),
                equal_to([('empty', 'empty_file'), ('junk', 'not_audio'),
                          ('missing', 'missing_audio')]), label='Dead')


def test_statistics_combiner_equals_numpy_over_all_frames():
  rng = np.random.default_rng(3)
  mfccs = [rng.normal(-300, 50, (126, 20)).astype(np.float32)
           for _ in range(7)]
  everything = np.concatenate(mfccs).astype(np.float64)

  def check(outputs):
    (stats,) = outputs
    assert stats['num_frames'] == 7 * 126
    np.testing.assert_allclose(stats['mean'], everything.mean(0), rtol=1e-9)
    np.testing.assert_allclose(stats['std'], everything.std(0), rtol=1e-7)

  with pipeline() as p:
    result = (p | beam.Create(mfccs, reshuffle=True)
              | beam.CombineGlobally(statistics.FeatureStatisticsFn()))
    assert_that(result, check)


def test_statistics_of_nothing_is_none():
  with pipeline() as p:
    result = (p | beam.Create([]) |
              beam.CombineGlobally(statistics.FeatureStatisticsFn()))
    assert_that(result, equal_to([None]))


def test_instrument_split_never_puts_an_instrument_in_two_splits():
  notes = [note(f'{family}_acoustic_{i:03d}-{pitch:03d}-100', family)
           for family in ('guitar', 'bass', 'reed') for i in range(40)
           for pitch in range(30, 90, 7)]
  assigned = [dataclasses.replace(n, split=selection.assigned_split(
      n, splits.SplitMethod.INSTRUMENT, (0.8, 0.1, 0.1))) for n in notes]
  splits_of = {}
  for n in assigned:
    splits_of.setdefault(n.instrument_str, set()).add(n.split)
  assert all(len(s) == 1 for s in splits_of.values())
  counts = {s: sum(1 for n in assigned if n.split == s)
            for s in splits.SPLIT_NAMES}
  assert counts['train'] > counts['valid'] > 0 and counts['test'] > 0


def test_note_split_spreads_each_instrument_over_splits():
  notes = [note(f'guitar_acoustic_000-{pitch:03d}-{v:03d}')
           for pitch in range(21, 109) for v in (25, 50, 75, 100, 127)]
  assigned = {selection.assigned_split(n, splits.SplitMethod.NOTE,
                                       (0.8, 0.1, 0.1)) for n in notes}
  assert assigned == {'train', 'valid', 'test'}


def test_split_hash_is_a_fixed_function_of_the_key():
  # Pinned values: Python's salted hash() would differ between processes,
  # and a changed hash would silently move instruments between splits.
  assert math.isclose(splits.unit_interval_hash('x'), 0.177507, abs_tol=1e-6)
  assert splits.assign_split('x', (0.8, 0.1, 0.1)) == 'train'
  assert splits.assign_split('x', (0.1, 0.1, 0.8)) == 'valid'
  assert splits.assign_split('x', (0.1, 0.05, 0.85)) == 'test'


@pytest.mark.parametrize('directory,name', [
    ('/data/nsynth-valid', 'valid'), ('gs://bucket/nsynth-train/', 'train'),
    ('/data/NSynth-Test', 'test'), ('/data/holdout_2', 'holdout_2'),
    ('/data/phrases-valid', 'valid')])
def test_split_name_comes_from_the_directory(directory, name):
  assert examples_json.split_name_from_dir(directory) == name


def test_outcome_counts_name_every_outcome():
  n = note()
  batch = FeaturizedBatch(
      (n, note('guitar_acoustic_000-061-100'), note(split='valid')),
      np.zeros((3, 126, 20), np.float32), None)
  assert sorted(accounting.outcome_counts(batch), key=str) == [
      (OutcomeKey(Kind.WRITTEN, 'train'), 2),
      (OutcomeKey(Kind.WRITTEN, 'valid'), 1)]
  assert accounting.outcome_counts(accounting.Filtered(n, 'cap')) == [
      (OutcomeKey(Kind.FILTERED, 'cap'), 1)]
  assert accounting.outcome_counts(outcomes.DeadLetter(
      'x', 'f', 'train', 'non_finite', 'r')) == [
          (OutcomeKey(Kind.DEAD_LETTER, 'non_finite'), 1)]
  with pytest.raises(TypeError):
    accounting.outcome_counts(n)
  # The counters keep their names: written_train, dead_letter_non_finite.
  assert OutcomeKey(Kind.WRITTEN, 'train').counter_name == 'written_train'
  assert OutcomeKey(Kind.RECORDING_DEAD_LETTER, 'not_audio').counter_name == (
      'recording_dead_letter_not_audio')


def test_the_accounting_adds_the_outcomes_of_every_note_once():
  counts = {OutcomeKey(Kind.WRITTEN, 'train'): 5,
            OutcomeKey(Kind.FILTERED, 'source'): 2,
            OutcomeKey(Kind.DEAD_LETTER, 'no_sound'): 1,
            OutcomeKey(Kind.AUGMENTED, 'train'): 10,
            OutcomeKey(Kind.WINDOW, 'train'): 7,
            OutcomeKey(Kind.RECORDING_WINDOWED, 'train'): 2,
            OutcomeKey(Kind.SILENT_WINDOWS): 3}
  books = outcomes.Accounting.from_counts(counts, with_recordings=True)
  assert books.read == 8   # copies and windows are not notes read
  assert books.recordings.read == 2
  assert books.recordings.windows_written == {'train': 7}
  assert outcomes.Accounting.from_json(books.to_json()) == books


def test_a_silent_note_is_dead_lettered_as_no_sound(tmp_path):
  t = np.arange(64000) / 16000.0
  (tmp_path / 'tone.wav').write_bytes(wav_bytes(0.5 * np.sin(
      2 * np.pi * 440 * t)))
  (tmp_path / 'silence.wav').write_bytes(wav_bytes(np.zeros(64000)))
  (tmp_path / 'whisper.wav').write_bytes(wav_bytes(1e-4 * np.sin(
      2 * np.pi * 440 * t)))   # -83 dBFS
  # A DC offset is no sound; channels in anti-phase, and a top piano note
  # gone within 32 ms, are heard.
  (tmp_path / 'dc.wav').write_bytes(wav_bytes(np.full(64000, 0.05)))
  tone = 0.5 * np.sin(2 * np.pi * 440 * t)
  (tmp_path / 'anti-phase.wav').write_bytes(wav_bytes(np.stack(
      [tone, -tone], axis=1)))
  (tmp_path / 'top-note.wav').write_bytes(wav_bytes(0.01 * np.sin(
      2 * np.pi * 4186 * t) * np.exp(-t / 0.008)))
  notes = [note(n, audio_path=str(tmp_path / f'{n}.wav'))
           for n in ('tone', 'silence', 'whisper', 'dc', 'anti-phase',
                     'top-note')]
  with pipeline() as p:
    result = p | beam.Create(notes) | featurize.FeaturizeNotes(featurizer())
    assert_that(result[accounting.NOTES] | beam.FlatMap(
        lambda b: [n.note_str for n in b.notes]),
                equal_to(['tone', 'anti-phase', 'top-note']), label='Written')
    assert_that(result[accounting.DEAD_LETTERS] | beam.Map(
        lambda d: (d.note_str, d.kind)),
                equal_to([('silence', 'no_sound'), ('whisper', 'no_sound'),
                          ('dc', 'no_sound')]),
                label='NoSound')


def test_leaving_a_library_out_filters_its_training_notes_as_holdout():
  notes = [note('a', library='merlin', split='train'),
           note('b', library='timgm6mb', split='train'),
           note('c', library='timgm6mb', split='test')]
  chosen = config(split_method=splits.SplitMethod.LIBRARY,
                  holdout_library='timgm6mb')
  selected = [next(selection.select_note(n, chosen, VOCABULARY))
              for n in notes]
  assert selected[0].split == 'train'
  assert isinstance(selected[1].value, accounting.Filtered)
  assert selected[1].value.filter_name == 'holdout'
  assert selected[2].split == 'test'


def test_a_batch_of_several_splits_comes_apart_row_by_row():
  notes = (note('a', split='train'), note('b', split='valid'),
           note('c', split='train'))
  mfccs = np.arange(3, dtype=np.float32)[:, None, None] * np.ones((3, 2, 2))
  clips = np.arange(3, dtype=np.float32)[:, None] * np.ones((3, 4))
  parts = {b.split: b for b in FeaturizedBatch(
      notes, mfccs, clips).per_split()}
  assert [n.note_str for n in parts['train'].notes] == ['a', 'c']
  assert parts['train'].mfccs[:, 0, 0].tolist() == [0, 2]
  assert parts['train'].clips[:, 0].tolist() == [0, 2]
  assert [n.note_str for n in parts['valid'].notes] == ['b']
  assert parts['valid'].mfccs[:, 0, 0].tolist() == [1]


def test_an_augmented_copy_is_another_recording_of_the_same_note():
  from beam_pipelines import augmentation
  t = np.arange(64000) / 16000.0
  clip = (0.5 * np.sin(2 * np.pi * 440 * t) * np.exp(-t)).astype(np.float32)
  config = augmentation.AugmentationConfig(copies=3, seed=1)
  copies = augmentation.augmented_copies(clip, 'n-060-100', config)
  assert len(copies) == 3
  for copy in copies:
    assert copy.shape == clip.shape and copy.dtype == np.float32
    assert np.all(np.isfinite(copy)) and np.max(np.abs(copy)) <= 0.99 + 1e-6
    assert not np.allclose(copy, clip, atol=1e-3)
    # Still the same note: its energy stays at 440 Hz (speed is +-2%).
    spectrum = np.abs(np.fft.rfft(copy[:16000]))
    assert abs(np.argmax(spectrum) - 440) <= 10
  again = augmentation.augmented_copies(clip, 'n-060-100', config)
  for a, b in zip(copies, again):
    np.testing.assert_array_equal(a, b)
  chain = augmentation.draw_chain(config, 'n-060-100', 1)
  assert config.gain_db[0] <= chain.gain_db <= config.gain_db[1]
  assert config.speed[0] <= chain.speed <= config.speed[1]
  assert config.noise_snr_db[0] <= chain.noise_snr_db <= config.noise_snr_db[1]

