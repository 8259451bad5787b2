"""The scale benchmark's dataset has NSynth's counts, schema and rules, and
costs no disk for audio; the benchmark runs every stage end to end."""

import collections
import json
import os
import subprocess
import sys

import pytest

from benchmarks import nsynth_layout
from benchmarks import nsynth_scale
from benchmarks import nsynth_stages
from benchmarks import process_tree

# NSynth's examples.json schema, as DESIGN.md ("NSynth as distributed")
# spells it out: field -> type.
NSYNTH_FIELDS = {
    'note': int, 'note_str': str, 'instrument': int, 'instrument_str': str,
    'pitch': int, 'velocity': int, 'sample_rate': int, 'qualities': list,
    'qualities_str': list, 'instrument_family': int,
    'instrument_family_str': str, 'instrument_source': int,
    'instrument_source_str': str,
}
FAMILIES = ('bass', 'brass', 'flute', 'guitar', 'keyboard', 'mallet', 'organ',
            'reed', 'string', 'synth_lead', 'vocal')
SOURCES = ('acoustic', 'electronic', 'synthetic')
TINY_SCALE = 0.001      # 289 + 13 + 4 notes
POOL_STEP = 24          # a few pitches per demo instrument: renders in seconds


@pytest.fixture(scope='module')
def pool(tmp_path_factory):
  root = tmp_path_factory.mktemp('pool')
  nsynth_layout.render_pool(str(root), POOL_STEP, (50, 100))
  return root


@pytest.fixture(scope='module')
def laid_out(pool, tmp_path_factory):
  root = tmp_path_factory.mktemp('nsynth')
  counts = nsynth_layout.lay_out(str(root), TINY_SCALE, str(pool))
  examples = {}
  for split in ('train', 'valid', 'test'):
    with open(root / f'nsynth-{split}' / 'examples.json') as f:
      examples[split] = json.load(f)
  return root, counts, examples


def test_counts_are_nsynths_at_the_scale(laid_out):
  root, counts, examples = laid_out
  expected = {'train': round(289_205 * TINY_SCALE),
              'valid': round(12_678 * TINY_SCALE),
              'test': round(4_096 * TINY_SCALE)}
  assert counts == expected
  for split, entries in examples.items():
    assert len(entries) == expected[split]
    audio = sorted(os.listdir(root / f'nsynth-{split}' / 'audio'))
    assert audio == sorted(f'{key}.wav' for key in entries)


def test_full_scale_plan_has_nsynths_counts():
  instruments = nsynth_layout.plan_instruments(1.0)
  notes, names = collections.Counter(), collections.defaultdict(set)
  for instrument in instruments:
    notes[instrument.split] += instrument.num_notes
    names[instrument.split].add(instrument.instrument_str)
  assert notes == {'train': 289_205, 'valid': 12_678, 'test': 4_096}
  assert {s: len(n) for s, n in names.items()} == {
      'train': 953, 'valid': 53, 'test': 24}
  # Every instrument can play its notes: 88 pitches x 5 velocities at most.
  assert max(i.num_notes for i in instruments) <= 440
  # About 28% of NSynth's notes are synthetic (86,777 of 305,979), which the
  # Beam job's default filter leaves out.
  synthetic = sum(i.num_notes for i in instruments if i.source == 'synthetic')
  assert synthetic / 305_979 == pytest.approx(86_777 / 305_979, abs=0.02)


def test_every_entry_has_nsynths_schema_and_no_other_field(laid_out):
  _, _, examples = laid_out
  ids = set()
  for entries in examples.values():
    for key, entry in entries.items():
      assert set(entry) == set(NSYNTH_FIELDS), key
      for field, kind in NSYNTH_FIELDS.items():
        assert isinstance(entry[field], kind), (key, field)
      assert entry['note_str'] == key
      family, source = entry['instrument_family_str'], entry[
          'instrument_source_str']
      assert entry['instrument_family'] == FAMILIES.index(family)
      assert entry['instrument_source'] == SOURCES.index(source)
      number = entry['instrument_str'].rsplit('_', 1)[1]
      assert entry['instrument_str'] == f'{family}_{source}_{number}'
      assert len(number) == 3 and number.isdigit()
      assert key == (f'{entry["instrument_str"]}-{entry["pitch"]:03d}-'
                     f'{entry["velocity"]:03d}')
      assert 21 <= entry['pitch'] <= 108
      assert entry['velocity'] in (25, 50, 75, 100, 127)
      assert entry['sample_rate'] == 16000
      assert len(entry['qualities']) == 10
      ids.add(entry['note'])
  assert len(ids) == sum(len(e) for e in examples.values())


def test_no_instrument_is_in_two_splits(laid_out):
  _, _, examples = laid_out
  by_split = {split: {(e['instrument'], e['instrument_str'])
                      for e in entries.values()}
              for split, entries in examples.items()}
  assert not by_split['train'] & by_split['valid']
  assert not by_split['train'] & by_split['test']
  assert not by_split['valid'] & by_split['test']
  # instrument ids and names name the same instruments
  every = set().union(*by_split.values())
  assert len({i for i, _ in every}) == len({s for _, s in every}) == len(every)


def test_audio_is_hard_links_to_the_rendered_notes(laid_out, pool):
  root, _, examples = laid_out
  rendered = {}
  for path in pool.glob('nsynth-*/audio/*.wav'):
    rendered[os.stat(path).st_ino] = path
  disk_before = sum(os.stat(p).st_blocks for p in rendered.values())
  linked = set()
  for split, entries in examples.items():
    for key in entries:
      stat = os.stat(root / f'nsynth-{split}' / 'audio' / f'{key}.wav')
      assert stat.st_ino in rendered, key      # the same inode: no new data
      assert stat.st_nlink >= 2
      linked.add(stat.st_ino)
  # Linked notes take no blocks of their own: the pool's are all there is.
  assert sum(os.stat(p).st_blocks for p in rendered.values()) == disk_before
  assert len(linked) > 1


def test_notes_sound_like_their_family(laid_out, pool):
  """Each note links to a rendered note of its own family, and valid and
  test notes to instruments the demo kept out of its train split."""
  root, _, examples = laid_out
  pool_entries = {}
  for split in ('train', 'valid', 'test'):
    with open(pool / f'nsynth-{split}' / 'examples.json') as f:
      for key, entry in json.load(f).items():
        path = pool / f'nsynth-{split}' / 'audio' / f'{key}.wav'
        pool_entries[os.stat(path).st_ino] = (entry, split)
  for split, entries in examples.items():
    for key, entry in entries.items():
      ino = os.stat(root / f'nsynth-{split}' / 'audio' / f'{key}.wav').st_ino
      source_entry, source_split = pool_entries[ino]
      assert (source_entry['instrument_family_str'] ==
              entry['instrument_family_str']), key
      if entry['instrument_family_str'] != 'vocal':
        assert source_split == split, key


def test_layout_is_deterministic(pool, tmp_path):
  for name in ('a', 'b'):
    nsynth_layout.lay_out(str(tmp_path / name), TINY_SCALE, str(pool))
  for split in ('train', 'valid', 'test'):
    texts = [(tmp_path / n / f'nsynth-{split}' / 'examples.json').read_text()
             for n in ('a', 'b')]
    assert texts[0] == texts[1]


def test_apportion_adds_up_and_follows_the_weights():
  assert nsynth_layout.apportion(10, [1, 1, 1]) == [4, 3, 3]
  assert nsynth_layout.apportion(7, [70, 20, 10]) == [5, 1, 1]
  assert nsynth_layout.apportion(0, [1, 2]) == [0, 0]


def test_a_scale_outside_zero_to_one_is_refused():
  with pytest.raises(nsynth_layout.LayoutError, match='scale'):
    nsynth_layout.plan_instruments(0)


def test_disk_estimate_counts_the_records_the_default_job_keeps():
  config = nsynth_scale.ScaleConfig(scale=1.0)
  instruments = nsynth_layout.plan_instruments(1.0)
  needed = nsynth_scale.disk_needed(config, instruments, 1000, {}, {
      'pool': {'pitch_step': 1}, 'layout': {'scale': 1.0}})
  records = next(n for what, n in needed.items() if 'TFRecords' in what)
  # NSynth's acoustic and electronic notes, less its 4,065 vocal ones.
  kept = 108_978 + 110_224 - 3_925 - 140
  per_record = 4 * (126 * 128 + 3012)   # the MFCCs and MTT's mid-end
  assert records == pytest.approx(kept * per_record, rel=0.03)


def test_a_work_dir_with_other_files_is_refused(tmp_path):
  (tmp_path / 'mine.txt').write_text('keep me')
  with pytest.raises(nsynth_scale.ScaleError, match='did not write'):
    nsynth_scale.read_state(str(tmp_path))
  assert (tmp_path / 'mine.txt').read_text() == 'keep me'


def test_a_disk_too_small_is_refused_in_one_line_before_any_work(tmp_path):
  config = nsynth_scale.ScaleConfig(work_dir=str(tmp_path / 'work'))
  with pytest.raises(nsynth_scale.ScaleError, match='GB free; this run needs'):
    nsynth_scale.check_disk(config, {'TFRecords': 1 << 60})
  assert not (tmp_path / 'work').exists()


def test_a_stage_without_its_input_is_refused_before_any_work(tmp_path):
  config = nsynth_scale.ScaleConfig(work_dir=str(tmp_path / 'work'),
                                    scale=TINY_SCALE, stages=('export',))
  with pytest.raises(nsynth_stages.StageError,
                     match='export needs what train writes'):
    nsynth_scale.run(config)
  assert not (tmp_path / 'work').exists()


def test_epoch_seconds_are_read_from_keras_epoch_lines(tmp_path):
  log = tmp_path / 'train.log'
  log.write_text('Epoch 1/2\n'
                 '37/37 - 58s - 2s/step - accuracy: 0.8594 - loss: 1.4850\n'
                 'Epoch 2/2\n'
                 '37/37 - 61s - 2s/step - accuracy: 0.9 - loss: 1.2\n'
                 ' train: accuracy 1.000  loss 0.243\n')
  assert nsynth_stages.epoch_seconds(str(log)) == [58, 61]


def test_a_failed_run_keeps_the_logs_its_error_names(tmp_path):
  for name in ('pool', 'dataset', 'tfrecords', 'logs'):
    (tmp_path / name).mkdir()
  (tmp_path / 'logs' / 'tfrecords.log').write_text('what went wrong')
  (tmp_path / 'nsynth_scale.json').write_text('{}')
  nsynth_scale.remove_work_dir(str(tmp_path), keep_logs=True)
  assert sorted(os.listdir(tmp_path)) == ['logs']
  assert (tmp_path / 'logs' / 'tfrecords.log').read_text() == 'what went wrong'
  nsynth_scale.remove_work_dir(str(tmp_path), keep_logs=False)
  assert not tmp_path.exists()


@pytest.mark.slow
def test_peak_rss_sums_the_whole_process_tree(tmp_path):
  """Two children that each hold 200 MB at once: the tree's peak is at
  least their sum, which the largest single process would not show."""
  hold = ('import subprocess, sys, time\n'
          'kids = [subprocess.Popen([sys.executable, "-c", '
          '"b = bytearray(200 << 20); import time; time.sleep(3)"]) '
          'for _ in range(2)]\n'
          '[k.wait() for k in kids]\n')
  seconds, peak = process_tree.run_measured(
      [sys.executable, '-c', hold], str(tmp_path / 'log'))
  assert seconds >= 3
  assert peak >= 400 << 20


def test_a_failing_command_is_one_error_naming_its_log(tmp_path, capsys):
  log = tmp_path / 'log'
  with pytest.raises(process_tree.CommandFailedError, match=str(log)):
    process_tree.run_measured(
        [sys.executable, '-c', 'print("what went wrong"); raise SystemExit(3)'],
        str(log))
  assert 'what went wrong' in capsys.readouterr().err


@pytest.mark.slow
def test_every_stage_runs_at_a_tiny_scale(tmp_path):
  work_dir = tmp_path / 'work'
  result = subprocess.run(
      [sys.executable, '-m', 'benchmarks.nsynth_scale',
       f'--scale={TINY_SCALE}', f'--work_dir={work_dir}',
       f'--pool_pitch_step={POOL_STEP}', '--predict_notes=4',
       '--ceiling_notes=64', '--ceiling_seconds=2',
       # The stages, not the recipe, are under test: the embedding's
       # network costs minutes on 2 cores here and has tests of its own.
       '--beam_args=--direct_num_workers=1 --embedding=none',
       '--train_args=--model=stats_mlp'],
      capture_output=True, text=True, timeout=1800, check=False)
  assert result.returncode == 0, result.stdout + result.stderr
  rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()
          if line.startswith('  ') and line.split()}
  for stage in ('tfrecords', 'train', 'evaluate', 'export', 'predict'):
    assert stage in rows, result.stdout
    assert float(rows[stage][1]) > 0                # wall seconds
  for stage in ('tfrecords', 'train'):               # a ratio to a ceiling
    assert float(rows[stage][-1]) > 0, rows[stage]
  assert 'GB' in rows['tfrecords']
  assert not work_dir.exists()                       # cleaned up
  assert 'Traceback' not in result.stderr


def test_the_full_size_estimate_scales_only_what_grows_with_the_notes():
  rows = [nsynth_stages.StageResult(name, seconds, None, 0, '')
          for name, seconds in (('render', 9.0), ('tfrecords', 100.0),
                                ('train', 50.0), ('evaluate', 10.0),
                                ('export', 30.0), ('predict', 12.0))]
  # (100 + 50 + 10) / 0.1 + 30 + 12; the benchmark's own render is no stage.
  assert nsynth_scale.full_size_estimate(rows, 0.1) == pytest.approx(1642.0)
  assert nsynth_scale.full_size_estimate(rows[:3], 0.1) is None
