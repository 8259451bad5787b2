"""The whole Beam job on DirectRunner, on rendered data and on damaged data."""

import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from beam_pipelines import nsynth_tfrecords
from beam_pipelines import output
from nsynth_contracts import manifest as manifest_lib
from nsynth_contracts import schema
from tests.conftest import float_wav_bytes
from tests.conftest import wav_bytes


def run(*args):
  return nsynth_tfrecords.run([str(a) for a in args])


def read_split(output_dir, split, mfcc_shape=(126, 20)):
  files = sorted(glob.glob(os.path.join(output_dir,
                                        manifest_lib.shard_pattern(split))))
  assert files, f'no shards for {split}'
  records = tf.data.TFRecordDataset(files, compression_type='GZIP').batch(1000)
  parsed = [schema.parse_batch(batch, mfcc_shape) for batch in records]
  return {key: np.concatenate([p[key].numpy() for p in parsed])
          for key in parsed[0]}


def expected_notes(split_dir, keep=lambda e: e['instrument_source_str'] in (
    'acoustic', 'electronic') and e['instrument_family_str'] != 'vocal'):
  entries = json.loads((split_dir / 'examples.json').read_text())
  return {k for k, e in entries.items() if keep(e)}


@pytest.fixture(scope='module')
def demo_job(tiny_demo, tmp_path_factory):
  """The job run once on all three rendered splits."""
  out = tmp_path_factory.mktemp('tfrecords')
  inputs = ','.join(str(tiny_demo / f'nsynth-{s}')
                    for s in ('train', 'valid', 'test'))
  job = run(f'--input={inputs}', f'--output_dir={out}', '--num_shards=2')
  return job, out


def test_writes_every_kept_note_once_with_its_label(demo_job, tiny_demo):
  job, out = demo_job
  vocabulary = job.manifest.vocabulary
  for split in ('train', 'valid', 'test'):
    records = read_split(out, split)
    notes = [n.decode() for n in records[schema.NOTE_STR]]
    assert sorted(notes) == sorted(expected_notes(tiny_demo /
                                                  f'nsynth-{split}'))
    families = [f.decode() for f in records[schema.FAMILY]]
    assert [vocabulary.family(i) for i in records[schema.LABEL]] == families
    assert set(families) <= set(vocabulary.families)
    assert np.all(np.isfinite(records[schema.MFCC]))
  assert len(glob.glob(str(out / 'train-*-of-00002.tfrecord.gz'))) == 2


def test_manifest_describes_the_output(demo_job, tiny_demo):
  job, out = demo_job
  manifest = manifest_lib.read(str(out))
  assert manifest == job.manifest
  assert manifest.mfcc_shape == (126, 20)
  assert manifest.vocabulary.num_classes == 9
  for split in ('train', 'valid', 'test'):
    summary = manifest.splits[split]
    assert summary.num_examples == len(read_split(out, split)[schema.LABEL])
    assert sum(summary.families.values()) == summary.num_examples
  assert manifest.split_method['name'] == 'directories'
  assert manifest.split_method['instrument_disjoint'] is True
  accounting = manifest.accounting
  total_entries = sum(len(json.loads(
      (tiny_demo / f'nsynth-{s}' / 'examples.json').read_text()))
                      for s in ('train', 'valid', 'test'))
  assert accounting['read'] == total_entries
  assert accounting['filtered']['source'] > 0  # synthetic notes
  assert accounting['filtered']['family'] > 0  # acoustic vocal notes
  assert not accounting['dead_lettered']


def test_normalization_is_the_training_splits_statistics(demo_job):
  job, out = demo_job
  frames = read_split(out, 'train')[schema.MFCC].reshape(-1, 20)
  np.testing.assert_allclose(job.manifest.normalization.mean, frames.mean(0),
                             rtol=1e-4, atol=1e-3)
  np.testing.assert_allclose(job.manifest.normalization.std, frames.std(0),
                             rtol=1e-4)
  assert job.manifest.normalization.num_frames == frames.shape[0]


def test_beam_metrics_count_each_outcome(demo_job):
  job, _ = demo_job
  counters = job.counters
  accounting = job.manifest.accounting
  assert counters['notes_read'] == accounting['read']
  for split, count in accounting['written'].items():
    assert counters[f'written_{split}'] == count
  for name, count in accounting['filtered'].items():
    assert counters[f'filtered_{name}'] == count


def test_summary_table_accounts_for_every_note(demo_job):
  job, out = demo_job
  table = nsynth_tfrecords.summary_table(job, str(out))
  read = job.manifest.accounting['read']
  assert f'every note accounted for: {read} of {read}' in table


@pytest.fixture
def damaged_split(split_copy):
  """A copy of the valid split with one of every kind of bad input added.

  Returns the directory, the notes that must still be written, and the
  dead-letter kind expected for each damaged note.
  """
  directory = split_copy('valid')
  entries = json.loads((directory / 'examples.json').read_text())
  kept = sorted(k for k, e in entries.items()
                if e['instrument_source_str'] != 'synthetic'
                and e['instrument_family_str'] != 'vocal')
  template = entries[kept[0]]
  t = np.arange(64000) / 16000.0
  tone = 0.4 * np.sin(2 * np.pi * 330 * t)
  audio = directory / 'audio'

  def add(name, data=None, **fields):
    entries[name] = dict(template, note_str=name, **fields)
    if data is not None:
      (audio / f'{name}.wav').write_bytes(data)

  nan_tone = tone.copy()
  nan_tone[100] = np.nan
  inf_tone = tone.copy()
  inf_tone[5] = np.inf
  # Readable in another format: these must be converted and written.
  add('resampled-22k', wav_bytes(0.4 * np.sin(2 * np.pi * 330 * np.arange(
      88200) / 22050.0), sample_rate=22050))
  add('stereo', wav_bytes(np.stack([tone, tone], 1)))
  add('eight-bit', wav_bytes(tone, sample_width=1))
  add('float', float_wav_bytes(tone))
  add('short', wav_bytes(tone[:1000]))
  good = set(kept) | {'resampled-22k', 'stereo', 'eight-bit', 'float', 'short'}
  # Unusable: each must be dead-lettered with its reason.
  dead = {}
  add('missing-audio')
  dead['missing-audio'] = 'missing_audio'
  add('zero-length', b'')
  dead['zero-length'] = 'empty_file'
  add('truncated', wav_bytes(tone)[:30000])
  dead['truncated'] = 'truncated'
  add('not-a-wav', b'\xff\xfb\x90\x64' + bytes(2000))
  dead['not-a-wav'] = 'not_wav'
  add('nan', float_wav_bytes(nan_tone))
  dead['nan'] = 'non_finite'
  add('inf', float_wav_bytes(inf_tone))
  dead['inf'] = 'non_finite'
  add('no-pitch', wav_bytes(tone))
  del entries['no-pitch']['pitch']
  dead['no-pitch'] = 'invalid_metadata'
  add('text-pitch', wav_bytes(tone), pitch='sixty')
  dead['text-pitch'] = 'invalid_metadata'
  add('kazoo', wav_bytes(tone), instrument_family_str='kazoo')
  dead['kazoo'] = 'invalid_metadata'
  entries['not-an-object'] = ['a', 'list']
  dead['not-an-object'] = 'invalid_metadata'
  (directory / 'examples.json').write_text(json.dumps(entries))
  return directory, good, dead


def test_bad_input_is_dead_lettered_and_nothing_good_is_lost(damaged_split,
                                                             tmp_path):
  directory, good, dead = damaged_split
  out = tmp_path / 'out'
  job = run(f'--input={directory}', f'--output_dir={out}')
  written = {n.decode() for n in read_split(out, 'valid')[schema.NOTE_STR]}
  assert written == good
  lines = [json.loads(line) for path in glob.glob(
      str(out / 'dead_letters' / '*.jsonl')) for line in open(path)]
  assert {d['note_str']: d['kind'] for d in lines} == dead
  for letter in lines:
    assert letter['reason'] and letter['file'] and letter['split'] == 'valid'
  accounting = job.manifest.accounting
  assert accounting['written'] == {'valid': len(good)}
  assert sum(accounting['dead_lettered'].values()) == len(dead)
  assert accounting['read'] == (len(good) + len(dead) +
                                sum(accounting['filtered'].values()))
  assert job.counters['dead_letter_invalid_metadata'] == 4
  assert job.counters['dead_letter_non_finite'] == 2


@pytest.mark.parametrize('content,message', [
    ('{"truncated": ', 'is not valid JSON'),
    ('[1, 2, 3]', 'must hold one JSON object'),
    (b'\xff\xfe\x00garbage', 'is not valid JSON'),
])
def test_malformed_examples_json_stops_at_once_naming_it(
    split_copy, tmp_path, content, message):
  directory = split_copy('valid')
  path = directory / 'examples.json'
  if isinstance(content, bytes):
    path.write_bytes(content)
  else:
    path.write_text(content)
  out = tmp_path / 'out'
  with pytest.raises(nsynth_tfrecords.JobInputError, match=message) as error:
    run(f'--input={directory}', f'--output_dir={out}')
  assert str(path) in str(error.value)
  assert not out.exists() or not os.listdir(out)


def test_missing_input_directory_stops_naming_it(tiny_demo, tmp_path):
  missing = tmp_path / 'nsynth-nowhere'
  out = tmp_path / 'out'
  with pytest.raises(nsynth_tfrecords.JobInputError,
                     match=f'{missing} does not exist'):
    run(f'--input={tiny_demo / "nsynth-valid"},{missing}',
        f'--output_dir={out}')
  assert not out.exists()


def test_refuses_a_non_empty_output_dir_unless_overwrite(tiny_demo, tmp_path):
  out = tmp_path / 'out'
  out.mkdir()
  (out / 'precious.txt').write_text('keep me')
  args = [f'--input={tiny_demo / "nsynth-test"}', f'--output_dir={out}']
  with pytest.raises(output.OutputDirNotEmptyError, match='--overwrite'):
    run(*args)
  assert os.listdir(out) == ['precious.txt']
  first = run(*args, '--overwrite', '--num_shards=3')
  second = run(*args, '--overwrite', '--num_shards=1')
  assert first.manifest.splits == {
      k: v for k, v in second.manifest.splits.items()}
  shards = sorted(os.path.basename(p) for p in glob.glob(str(out / '*.gz')))
  assert shards == ['test-00000-of-00001.tfrecord.gz']
  assert (out / 'precious.txt').read_text() == 'keep me'
  assert not glob.glob(str(out / '.staging-*'))


def test_a_failing_pipeline_leaves_no_partial_output(tiny_demo, tmp_path,
                                                     monkeypatch):
  def explode(*args, **kwargs):
    raise RuntimeError('worker lost')
  monkeypatch.setattr(nsynth_tfrecords.transforms, 'to_serialized_examples',
                      explode)
  out = tmp_path / 'out'
  with pytest.raises(Exception, match='worker lost'):
    run(f'--input={tiny_demo / "nsynth-valid"}', f'--output_dir={out}')
  assert os.listdir(out) == []


def test_single_input_split_by_instrument_is_disjoint(tiny_demo, tmp_path):
  out = tmp_path / 'out'
  job = run(f'--input={tiny_demo / "nsynth-train"}', f'--output_dir={out}',
            '--split_single_input=instrument', '--split_fractions=0.6,0.2,0.2')
  instruments = {s: set(i.decode() for i in read_split(out, s)[
      schema.INSTRUMENT]) for s in ('train', 'valid', 'test')}
  assert not instruments['train'] & instruments['valid']
  assert not instruments['train'] & instruments['test']
  assert not instruments['valid'] & instruments['test']
  assert job.manifest.split_method['name'] == 'instrument'
  assert job.manifest.split_method['instrument_disjoint'] is True


def test_blog_style_note_split_is_labelled_as_leaking(tiny_demo, tmp_path):
  out = tmp_path / 'out'
  job = run(f'--input={tiny_demo / "nsynth-train"}', f'--output_dir={out}',
            '--split_single_input=note', '--split_fractions=0.5,0.25,0.25')
  method = job.manifest.split_method
  assert method['name'] == 'note'
  assert method['instrument_disjoint'] is False
  assert method['instruments_in_several_splits'] > 0
  assert 'overstates' in method['description']


def test_filters_and_cap_are_options(tiny_demo, tmp_path):
  out = tmp_path / 'out'
  job = run(f'--input={tiny_demo / "nsynth-train"}', f'--output_dir={out}',
            '--sources=acoustic,electronic,synthetic', '--drop_families=',
            '--max_notes_per_family=3', '--keep_audio')
  manifest = job.manifest
  assert manifest.vocabulary.num_classes == 11
  assert all(0 < n <= 3 for n in manifest.splits['train'].families.values())
  assert manifest.accounting['filtered'].get('cap', 0) > 0
  assert 'source' not in manifest.accounting['filtered']
  records = read_split(out, 'train')
  assert len(records[schema.LABEL]) == manifest.splits['train'].num_examples
  with_audio = tf.data.TFRecordDataset(
      glob.glob(str(out / 'train-*')), compression_type='GZIP').batch(4)
  parsed = schema.parse_batch(next(iter(with_audio)), (126, 20),
                              manifest.audio_samples)
  assert parsed[schema.AUDIO].shape == (4, 64000)


@pytest.mark.parametrize('flag,message', [
    ('--compression_level=12', '--compression_level=12 must be'),
    ('--split_single_input=instrument', 'needs exactly one --input'),
    ('--sources=wooden', 'Unknown NSynth sources'),
    ('--batch_size=0', '--batch_size=0 must be >= 1'),
    ('--split_fractions=0.5,0.5', 'three non-negative numbers'),
])
def test_bad_flags_fail_before_any_work_naming_the_flag(flag, message, capsys):
  with pytest.raises(SystemExit):
    nsynth_tfrecords.parse_args(['--input=/a/nsynth-train,/a/nsynth-test',
                                 '--output_dir=never-created', flag])
  assert message in capsys.readouterr().err


def test_multi_processing_direct_runner_uses_worker_processes(tiny_demo,
                                                              tmp_path):
  out = tmp_path / 'out'
  job = run(f'--input={tiny_demo / "nsynth-valid"}', f'--output_dir={out}',
            '--runner=DirectRunner', '--direct_num_workers=2',
            '--direct_running_mode=multi_processing')
  records = read_split(out, 'valid')
  assert len(records[schema.LABEL]) == job.manifest.splits['valid'].num_examples
  assert job.counters['written_valid'] == job.manifest.splits[
      'valid'].num_examples
