"""The whole Beam job on DirectRunner, on rendered data and on damaged data."""

import collections
import contextlib
import glob
import io
import json
import logging
import os
import pathlib
import re
import shutil
import signal
import struct
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from beam_pipelines import accounting_table
from beam_pipelines import finished_dataset
from beam_pipelines import job as job_lib
from beam_pipelines import nsynth_tfrecords
from beam_pipelines import output
from beam_pipelines import reading
from beam_pipelines import versioned_output
from beam_pipelines import writing
from nsynth_contracts import dataset_versions
from nsynth_contracts import feature_params
from nsynth_contracts import manifest as manifest_lib
from nsynth_contracts import representation
from nsynth_contracts import schema
from tests.conftest import dataset
from tests.conftest import float_wav_bytes
from tests.conftest import holds_sound
from tests.conftest import read_demo_wav
from tests.conftest import wav_bytes

# The whole Beam job, run by nearly every test; the one that only parses
# flags is not worth a tier of its own.
pytestmark = pytest.mark.slow

MFCC_SHAPE = feature_params.DEFAULT_PARAMS.mfcc_shape
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*args):
  return nsynth_tfrecords.run([str(a) for a in args])


def read_split(output_dir, split, mfcc_shape=MFCC_SHAPE,
               compression=manifest_lib.GZIP):
  files = sorted(glob.glob(os.path.join(
      glob.escape(str(dataset(output_dir))),
      manifest_lib.shard_pattern(split, compression))))
  assert files, f'no shards for {split}'
  records = tf.data.TFRecordDataset(
      files, compression_type='GZIP' if compression == manifest_lib.GZIP
      else '').batch(1000)
  parsed = [schema.parse_batch(batch, mfcc_shape) for batch in records]
  return {key: np.concatenate([p[key].numpy() for p in parsed])
          for key in parsed[0]}


def sounds(wav_path) -> bool:
  """Whether a note holds a sound to name, computed apart from the job's own
  check."""
  return holds_sound(read_demo_wav(wav_path))


def _kept(split_dir) -> set[str]:
  """The notes the default filters keep, silent or not."""
  entries = json.loads((split_dir / 'examples.json').read_text())
  return {k for k, e in entries.items()
          if e['instrument_source_str'] in ('acoustic', 'electronic') and
          e['instrument_family_str'] != 'vocal'}


def expected_notes(split_dir, keep=lambda e: e['instrument_source_str'] in (
    'acoustic', 'electronic') and e['instrument_family_str'] != 'vocal'):
  """The notes the filters keep that have a sound to name."""
  entries = json.loads((split_dir / 'examples.json').read_text())
  return {k for k, e in entries.items()
          if keep(e) and sounds(split_dir / 'audio' / f'{k}.wav')}


@pytest.fixture(scope='module')
def demo_job(tiny_demo, tmp_path_factory):
  """The job run once on all three rendered splits."""
  out = tmp_path_factory.mktemp('tfrecords')
  inputs = ','.join(str(tiny_demo / f'nsynth-{s}')
                    for s in ('train', 'valid', 'test'))
  job = run(f'--input={inputs}', f'--output_dir={out}', '--num_shards=2')
  return job, out


def test_num_mfcc_gives_the_blogs_20_coefficients_the_first_of_ours(
    demo_job, tiny_demo, tmp_path):
  """--num_mfcc=20 writes the seed recipe's features. An orthonormal DCT's rows do
  not depend on how many are kept, so they are our default's first 20."""
  _, default_out = demo_job
  out = tmp_path / 'blog'
  job = run(f'--input={tiny_demo / "nsynth-valid"}', f'--output_dir={out}',
            '--num_mfcc=20')
  assert job.manifest.mfcc_shape == (126, 20)
  assert job.manifest.feature_params.num_mfcc == 20
  blog = read_split(out, 'valid', mfcc_shape=(126, 20))
  ours = read_split(default_out, 'valid')
  order = np.argsort(blog[schema.NOTE_STR])
  ours_order = np.argsort(ours[schema.NOTE_STR])
  # rtol: c0 sums 128 log-mel values near -70 dB; oneDNN adds them in
  # another order for 20 and 128 coefficients (20 float32 ulps at -740).
  np.testing.assert_allclose(blog[schema.MFCC][order],
                             ours[schema.MFCC][ours_order][..., :20],
                             atol=1e-3, rtol=1e-5)


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
  assert len(glob.glob(str(dataset(out) / 'train-*-of-00002.tfrecord.gz'))) == 2


def test_manifest_describes_the_output(demo_job, tiny_demo):
  job, out = demo_job
  manifest = manifest_lib.read(str(dataset(out)))
  assert manifest == job.manifest
  assert manifest.mfcc_shape == MFCC_SHAPE == (126, 128)
  assert manifest.vocabulary.num_classes == 9
  for split in ('train', 'valid', 'test'):
    summary = manifest.splits[split]
    assert summary.num_examples == len(read_split(out, split)[schema.LABEL])
    assert sum(summary.families.values()) == summary.num_examples
  assert manifest.split_method.name == 'directories'
  assert manifest.split_method.instrument_disjoint is True
  accounting = manifest.accounting
  total_entries = sum(len(json.loads(
      (tiny_demo / f'nsynth-{s}' / 'examples.json').read_text()))
                      for s in ('train', 'valid', 'test'))
  assert accounting.read == total_entries
  assert accounting.filtered['source'] > 0  # synthetic notes
  assert accounting.filtered['family'] > 0  # acoustic vocal notes
  # The demo renders a few notes as digital silence: nothing to name.
  silent = sum(len(_kept(tiny_demo / f'nsynth-{s}')) -
               len(expected_notes(tiny_demo / f'nsynth-{s}'))
               for s in ('train', 'valid', 'test'))
  assert silent > 0
  assert accounting.dead_lettered == {'no_sound': silent}


def test_normalization_is_the_training_splits_statistics(demo_job):
  job, out = demo_job
  frames = read_split(out, 'train')[schema.MFCC].reshape(-1, MFCC_SHAPE[1])
  np.testing.assert_allclose(job.manifest.normalization.mean, frames.mean(0),
                             rtol=1e-4, atol=1e-3)
  np.testing.assert_allclose(job.manifest.normalization.std, frames.std(0),
                             rtol=1e-4)
  assert job.manifest.normalization.num_frames == frames.shape[0]


def test_beam_metrics_count_each_outcome(demo_job):
  job, _ = demo_job
  counters = job.counters
  accounting = job.manifest.accounting
  assert counters['notes_read'] == accounting.read
  for split, count in accounting.written.items():
    assert counters[f'written_{split}'] == count
  for name, count in accounting.filtered.items():
    assert counters[f'filtered_{name}'] == count


def test_summary_table_accounts_for_every_note(demo_job, tiny_demo):
  """The table's rows against counts made without the job: the entries of
  each examples.json, and the records actually in the shards."""
  job, out = demo_job
  table = accounting_table.summary_table(job, str(out))
  entries = sum(len(json.loads((tiny_demo / f'nsynth-{s}' /
                                'examples.json').read_text()))
                for s in ('train', 'valid', 'test'))
  rows = {}
  for line in table.splitlines():
    fields = line.split()
    if len(fields) >= 3 and fields[-1].isdigit() and fields[0] in (
        'read', 'written', 'filtered', 'dead-lettered'):
      rows[(fields[0], ' '.join(fields[1:-1]))] = int(fields[-1])
  assert rows[('read', 'examples.json')] == entries
  assert sum(n for (outcome, _), n in rows.items() if outcome != 'read') == \
      entries
  for split in ('train', 'valid', 'test'):
    assert rows[('written', split)] == len(read_split(out, split)[
        schema.LABEL])
  assert f'every note accounted for: {entries} of {entries}' in table


def raw_wav(channels=1, rate=16000, block_align=2, bits=16,
            data=bytes(64000)):
  """A 16-bit WAV built field by field, so that the fields may contradict."""
  fmt = struct.pack('<HHIIHH', 1, channels, rate, rate * block_align,
                    block_align, bits)
  body = (b'WAVE' + b'fmt ' + struct.pack('<I', 16) + fmt + b'data' +
          struct.pack('<I', len(data)) + data)
  return b'RIFF' + struct.pack('<I', len(body)) + body


@pytest.fixture
def damaged_split(split_copy, tmp_path):
  """A copy of the valid split with one of every kind of bad input added.

  Returns the directory, the notes that must still be written, the
  (note_str, dead-letter kind) expected for each damaged note, and the
  secret that no message may quote.
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
  huge_tone = tone.copy()
  huge_tone[7] = 1e19
  # Readable in another format: these must be converted and written.
  add('resampled-22k', wav_bytes(0.4 * np.sin(2 * np.pi * 330 * np.arange(
      88200) / 22050.0), sample_rate=22050))
  add('stereo', wav_bytes(np.stack([tone, tone], 1)))
  add('eight-bit', wav_bytes(tone, sample_width=1))
  add('float', float_wav_bytes(tone))
  add('short', wav_bytes(tone[:1000]))
  add('link-inside')  # A link to another note of the same split is fine.
  (audio / 'link-inside.wav').symlink_to(audio / f'{kept[0]}.wav')
  # The split's own notes that are digital silence have nothing to name.
  silent = {k for k in kept if not sounds(audio / f'{k}.wav')}
  good = set(kept) - silent | {'resampled-22k', 'stereo', 'eight-bit',
                               'float', 'short', 'link-inside'}
  # Unusable: each must be dead-lettered with its reason.
  dead = collections.Counter()
  def expect(name, kind):
    dead[(name, kind)] += 1
  for name in silent:
    expect(name, 'no_sound')
  add('missing-audio')
  expect('missing-audio', 'missing_audio')
  add('zero-length', b'')
  expect('zero-length', 'empty_file')
  add('truncated', wav_bytes(tone)[:30000])
  expect('truncated', 'truncated')
  secret = 'password=hunter2'
  add('not-a-wav', secret.encode() + bytes(2000))
  expect('not-a-wav', 'not_audio')
  add('nan', float_wav_bytes(nan_tone))
  expect('nan', 'non_finite')
  add('inf', float_wav_bytes(inf_tone))
  expect('inf', 'non_finite')
  add('huge', float_wav_bytes(huge_tone))
  expect('huge', 'out_of_range')
  add('channels-vs-block-align', raw_wav(channels=2, block_align=2))
  expect('channels-vs-block-align', 'bad_header')
  add('absurd-channels', raw_wav(channels=60000, block_align=2))
  expect('absurd-channels', 'bad_header')
  add('fifty-hertz', raw_wav(rate=50))
  expect('fifty-hertz', 'bad_sample_rate')
  # Links out of the dataset are not followed, whatever they point at.
  outside = tmp_path / 'elsewhere'
  outside.mkdir()
  (outside / 'note.wav').write_bytes(wav_bytes(tone))
  (outside / 'secrets.txt').write_text(secret * 100)
  add('link-to-audio-outside')
  (audio / 'link-to-audio-outside.wav').symlink_to(outside / 'note.wav')
  expect('link-to-audio-outside', 'outside_dataset')
  add('link-to-a-secret')
  (audio / 'link-to-a-secret.wav').symlink_to(outside / 'secrets.txt')
  expect('link-to-a-secret', 'outside_dataset')
  add('dangling-link')
  (audio / 'dangling-link.wav').symlink_to(audio / 'nothing-there.wav')
  expect('dangling-link', 'missing_audio')
  add('a-fifo')
  os.mkfifo(audio / 'a-fifo.wav')  # Reading it would block forever.
  expect('a-fifo', 'not_a_file')
  add('a-directory')
  (audio / 'a-directory.wav').mkdir()
  expect('a-directory', 'not_a_file')
  add('no-pitch', wav_bytes(tone))
  del entries['no-pitch']['pitch']
  expect('no-pitch', 'invalid_metadata')
  add('text-pitch', wav_bytes(tone), pitch='sixty')
  expect('text-pitch', 'invalid_metadata')
  add('kazoo', wav_bytes(tone), instrument_family_str='kazoo')
  expect('kazoo', 'invalid_metadata')
  entries['not-an-object'] = ['a', 'list']
  expect('not-an-object', 'invalid_metadata')
  add('nul\0byte')  # No file can be named so.
  expect('nul\0byte', 'invalid_metadata')
  add('x' * 300)  # Nor so long.
  expect('x' * 300, 'invalid_metadata')
  # A lone surrogate escape in a field the job never reads.
  add('surrogate-in-qualities', wav_bytes(tone), qualities_str=['\ud800'])
  expect('surrogate-in-qualities', 'invalid_metadata')
  text = json.dumps(entries)
  # Keys given twice: identical copies keep the first, differing ones none.
  same = json.dumps(dict(template, note_str='dup-same'))
  other = json.dumps(dict(template, note_str='dup-different', pitch=61))
  first = json.dumps(dict(template, note_str='dup-different'))
  text = (text[:-1] + f', "dup-same": {same}, "dup-same": {same}, '
          f'"dup-different": {first}, "dup-different": {other}}}')
  for name in ('dup-same', 'dup-different'):
    (audio / f'{name}.wav').write_bytes(wav_bytes(tone))
  good.add('dup-same')
  expect('dup-same', 'duplicate_note')
  expect('dup-different', 'duplicate_note')
  expect('dup-different', 'duplicate_note')
  (directory / 'examples.json').write_text(text)
  return directory, good, dead, secret


def test_bad_input_is_dead_lettered_and_nothing_good_is_lost(damaged_split,
                                                             tmp_path):
  directory, good, dead, secret = damaged_split
  out = tmp_path / 'out'
  job = run(f'--input={directory}', f'--output_dir={out}')
  written = [n.decode() for n in read_split(out, 'valid')[schema.NOTE_STR]]
  assert sorted(written) == sorted(good)  # Each exactly once.
  lines = [json.loads(line) for path in glob.glob(
      str(dataset(out) / 'dead_letters' / '*.jsonl')) for line in open(path)]
  printable = {name.encode('utf-8', 'backslashreplace').decode(): name
               for name, _ in dead}
  assert collections.Counter(
      (printable[d['note_str']], d['kind']) for d in lines) == dead
  for letter in lines:
    assert letter['reason'] and letter['file'] and letter['split'] == 'valid'
    assert 'hunter2' not in letter['reason']
  reasons = {d['note_str']: d['reason'] for d in lines}
  assert 'NUL byte' in reasons['nul\0byte']
  assert 'outside' in reasons['link-to-a-secret']
  accounting = job.manifest.accounting
  assert accounting.written == {'valid': len(good)}
  assert sum(accounting.dead_lettered.values()) == sum(dead.values())
  # Against an independent count: the entries of the file as text.
  entries_in_file = open(directory / 'examples.json').read().count(
      '"note_str": ')
  assert accounting.read == entries_in_file + 1  # 'not-an-object' has none
  assert accounting.read == (len(good) + sum(dead.values()) +
                                sum(accounting.filtered.values()))
  assert accounting.dead_lettered['duplicate_note'] == 3
  assert job.counters['dead_letter_non_finite'] == 2
  table = accounting_table.summary_table(job, str(out))
  assert 'duplicate_note' in table


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
  with pytest.raises(job_lib.JobInputError, match=message) as error:
    run(f'--input={directory}', f'--output_dir={out}')
  assert str(path) in str(error.value)
  assert not out.exists() or not os.listdir(out)


def test_missing_input_directory_stops_naming_it(tiny_demo, tmp_path):
  missing = tmp_path / 'nsynth-nowhere'
  out = tmp_path / 'out'
  with pytest.raises(job_lib.JobInputError,
                     match=f'{missing} does not exist'):
    run(f'--input={tiny_demo / "nsynth-valid"},{missing}',
        f'--output_dir={out}')
  assert not out.exists()


def versions(out) -> list[str]:
  """The version directories in `out`, oldest first."""
  return sorted(n for n in os.listdir(out)
                if dataset_versions.is_version_name(n))


def test_each_run_writes_a_new_version_and_overwrite_deletes_the_older(
    tiny_demo, tmp_path):
  out = tmp_path / 'out'
  out.mkdir()
  (out / 'precious.txt').write_text('keep me')
  args = [f'--input={tiny_demo / "nsynth-test"}', f'--output_dir={out}']
  first = run(*args, '--num_shards=3')
  assert versions(out) == [os.path.basename(first.dataset_dir)]
  assert sorted(os.listdir(first.dataset_dir)) == [
      'dead_letters', 'manifest.json'] + [
          f'test-0000{i}-of-00003.tfrecord.gz' for i in range(3)]
  with pytest.raises(output.OutputDirNotEmptyError,
                     match=f'holds the dataset {first.dataset_dir}; pass '
                     f'--overwrite'):
    run(*args)
  assert versions(out) == [os.path.basename(first.dataset_dir)]
  second = run(*args, '--overwrite', '--num_shards=1')
  assert second.dataset_dir > first.dataset_dir
  assert versions(out) == [os.path.basename(second.dataset_dir)]
  assert first.manifest.splits == second.manifest.splits
  assert dataset(out) == pathlib.Path(second.dataset_dir)
  assert (out / 'precious.txt').read_text() == 'keep me'


def test_overwrite_deletes_only_the_files_the_older_manifest_lists(tiny_demo,
                                                                   tmp_path):
  out = tmp_path / 'out'
  args = [f'--input={tiny_demo / "nsynth-test"}', f'--output_dir={out}']
  first = pathlib.Path(run(*args, '--num_shards=3').dataset_dir)
  (first / 'my_archive.tfrecord.gz').write_bytes(b'years of work')
  (first / 'dead_letters' / 'my_notes.jsonl').write_text('mine')
  (out / 'notes').mkdir()
  (out / 'notes' / 'todo.txt').write_text('mine too')
  run(*args, '--overwrite', '--num_shards=1')
  assert sorted(os.listdir(first)) == ['dead_letters', 'my_archive.tfrecord.gz']
  assert (first / 'my_archive.tfrecord.gz').read_bytes() == b'years of work'
  assert os.listdir(first / 'dead_letters') == ['my_notes.jsonl']
  assert (out / 'notes' / 'todo.txt').read_text() == 'mine too'


def test_a_dataset_written_before_versions_is_read_and_replaced(tiny_demo,
                                                                tmp_path):
  """Earlier versions of the job wrote the dataset into --output_dir itself:
  readers still take it, and --overwrite replaces it like a version."""
  out = tmp_path / 'out'
  old = pathlib.Path(run(f'--input={tiny_demo / "nsynth-test"}',
                         f'--output_dir={tmp_path / "old"}').dataset_dir)
  shutil.copytree(old, out)
  assert dataset(out) == out
  with pytest.raises(output.OutputDirNotEmptyError,
                     match=f'holds the dataset {out};'):
    run(f'--input={tiny_demo / "nsynth-test"}', f'--output_dir={out}')
  new = run(f'--input={tiny_demo / "nsynth-test"}', f'--output_dir={out}',
            '--overwrite')
  assert sorted(os.listdir(out)) == [os.path.basename(new.dataset_dir)]


def test_overwrite_never_deletes_for_a_manifest_it_did_not_write(tiny_demo,
                                                                 tmp_path):
  out = tmp_path / 'out'
  out.mkdir()
  (out / 'manifest.json').write_text('{"my": "hand-written manifest"}')
  with pytest.raises(output.OutputDirError,
                     match='is a manifest.json this job cannot read'):
    run(f'--input={tiny_demo / "nsynth-test"}', f'--output_dir={out}',
        '--overwrite')
  assert os.listdir(out) == ['manifest.json']
  assert json.loads((out / 'manifest.json').read_text()) == {
      'my': 'hand-written manifest'}


@pytest.mark.parametrize('listed', [
    '../../precious.txt', 'photos', 'dead_letters', 'notes.txt'])
def test_a_manifest_listing_foreign_names_deletes_nothing(tiny_demo, tmp_path,
                                                          listed):
  out = tmp_path / 'out'
  first = pathlib.Path(run(f'--input={tiny_demo / "nsynth-test"}',
                           f'--output_dir={out}').dataset_dir)
  (first / 'photos').mkdir()
  (first / 'photos' / 'p.txt').write_text('mine')
  (tmp_path / 'precious.txt').write_text('keep me')
  data = json.loads((first / 'manifest.json').read_text())
  data['files'].append(listed)
  (first / 'manifest.json').write_text(json.dumps(data))
  before = sorted(str(p) for p in tmp_path.rglob('*'))
  with pytest.raises(output.OutputDirError,
                     match=f"lists '{re.escape(listed)}', which is not a file "
                     f"this job writes; nothing was deleted"):
    run(f'--input={tiny_demo / "nsynth-test"}', f'--output_dir={out}',
        '--overwrite')
  assert sorted(str(p) for p in tmp_path.rglob('*')) == before
  assert (tmp_path / 'precious.txt').read_text() == 'keep me'


def test_a_killed_runs_version_is_skipped_named_and_never_touched(
    tiny_demo, tmp_path):
  """A version without its manifest is a run killed, or one still running:
  readers skip it, and no other run may delete it."""
  out = tmp_path / 'out'
  complete = run(f'--input={tiny_demo / "nsynth-test"}',
                 f'--output_dir={out}')
  unfinished = out / '29991231-235959-abcdef'   # Newer than any.
  unfinished.mkdir()
  (unfinished / 'test-00000-of-00001.tfrecord.gz').write_bytes(b'half')
  assert dataset(out) == pathlib.Path(complete.dataset_dir)
  stderr = io.StringIO()
  with contextlib.redirect_stderr(stderr):
    replacing = run(f'--input={tiny_demo / "nsynth-test"}',
                    f'--output_dir={out}', '--overwrite')
  assert (f'1 unfinished version in {out} (runs killed, or still running; '
          f'readers skip them): {unfinished}') in stderr.getvalue()
  assert (unfinished / 'test-00000-of-00001.tfrecord.gz').read_bytes() == (
      b'half')
  assert versions(out) == sorted([os.path.basename(replacing.dataset_dir),
                                  unfinished.name])
  assert dataset(out) == pathlib.Path(replacing.dataset_dir)


def test_a_reader_sees_no_version_before_its_manifest(tiny_demo, tmp_path,
                                                      monkeypatch):
  """Whenever a run is stopped, what readers take is a whole dataset: the
  older one until the new manifest exists, the new one after."""
  out = tmp_path / 'out'
  first = run(f'--input={tiny_demo / "nsynth-test"}', f'--output_dir={out}')
  seen = []
  write_manifest = finished_dataset.write_manifest

  def look_then_write(version_dir, manifest):
    # Every file the manifest lists is in place before it is written, and
    # nothing else this job writes.
    written = sorted(
        os.path.relpath(os.path.join(root, name), version_dir)
        for root, _, names in os.walk(version_dir) for name in names)
    assert manifest.files and sorted(manifest.files) == [
        name for name in written if output.is_job_file_name(name)]
    seen.append(dataset(out))
    write_manifest(version_dir, manifest)
    seen.append(dataset(out))

  monkeypatch.setattr(finished_dataset, 'write_manifest', look_then_write)
  second = run(f'--input={tiny_demo / "nsynth-test"}', f'--output_dir={out}',
               '--overwrite')
  assert seen == [pathlib.Path(first.dataset_dir),
                  pathlib.Path(second.dataset_dir)]


def test_two_jobs_started_together_each_write_a_whole_version(tiny_demo,
                                                              tmp_path):
  out = tmp_path / 'out'
  command = [sys.executable, '-m', 'beam_pipelines.nsynth_tfrecords',
             f'--input={tiny_demo / "nsynth-test"}', f'--output_dir={out}',
             '--overwrite', '--embedding=none']
  jobs = [subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
          for _ in range(2)]
  results = [(job.wait(timeout=300), job.stderr.read()) for job in jobs]
  assert [code for code, _ in results] == [0, 0], results
  # Each deleted only versions older than its own: the newest survives.
  newest = dataset(out)
  assert newest.name == versions(out)[-1]
  assert len(read_split(out, 'test')[schema.LABEL]) == manifest_lib.read(
      str(newest)).splits['test'].num_examples


@pytest.mark.parametrize('name', ['data[1]', 'data*', 'da?ta'])
def test_output_paths_with_pattern_characters_are_just_paths(tiny_demo,
                                                             tmp_path, name):
  out = tmp_path / name
  (tmp_path / 'data1').mkdir()  # What data[1] would match as a pattern.
  job = run(f'--input={tiny_demo / "nsynth-test"}', f'--output_dir={out}',
            '--num_shards=2')
  records = read_split(out, 'test')
  assert len(records[schema.LABEL]) == job.manifest.splits['test'].num_examples
  with pytest.raises(output.OutputDirNotEmptyError):
    run(f'--input={tiny_demo / "nsynth-test"}', f'--output_dir={out}')
  run(f'--input={tiny_demo / "nsynth-test"}', f'--output_dir={out}',
      '--overwrite')
  assert os.listdir(tmp_path / 'data1') == []
  assert len(versions(out)) == 1


def test_a_job_whose_every_note_fails_writes_nothing(split_copy, tmp_path):
  """Every note digital silence (as damaged weights or a broken decoder
  would dead-letter them all): no empty dataset replaces what was there."""
  split = split_copy('test')
  for wav in (split / 'audio').glob('*.wav'):
    wav.write_bytes(wav_bytes(np.zeros(64000)))
  out = tmp_path / 'out'
  out.mkdir()
  result = subprocess.run(
      [sys.executable, '-m', 'beam_pipelines.nsynth_tfrecords',
       f'--input={split}', f'--output_dir={out}', '--embedding=none'],
      cwd=REPO, capture_output=True, text=True, timeout=300)
  assert result.returncode == 1, result.stderr[-2000:]
  kept = len(_kept(split))
  assert result.stderr.strip().splitlines()[-1] == (
      f'error: none of the {kept} notes to featurize became an example '
      f'(dead-lettered: no_sound {kept}); no dataset was written, and '
      f'--output_dir was left as it was')
  assert list(out.iterdir()) == []


def test_an_impossible_output_path_is_one_line_naming_it(tiny_demo, tmp_path):
  a_file = tmp_path / 'a_file'
  a_file.write_text('')
  for path, words in ((a_file / 'out', 'cannot be created: '),
                      (a_file, 'exists and is not a directory')):
    result = subprocess.run(
        [sys.executable, '-m', 'beam_pipelines.nsynth_tfrecords',
         f'--input={tiny_demo / "nsynth-test"}', f'--output_dir={path}'],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f'error: --output_dir {path} {words}'), lines


def test_the_output_dir_is_checked_before_inputs_or_weights_are_read(
    tiny_demo, tmp_path, monkeypatch):
  """A wrong --output_dir is said at once, however long reading the inputs
  and the weights would take on a busy machine."""
  def read_too_early(*_):
    raise AssertionError('read before --output_dir was checked')

  monkeypatch.setattr(job_lib, 'check_inputs', read_too_early)
  monkeypatch.setattr(representation.WithWeights, 'read', read_too_early)
  a_file = tmp_path / 'a_file'
  a_file.write_text('')
  for path, words in ((a_file / 'out', f'cannot be created: {a_file} is '
                       f'not a directory'),
                      (a_file, 'exists and is not a directory')):
    with pytest.raises(output.OutputDirError) as error:
      run(f'--input={tiny_demo / "nsynth-test"}', f'--output_dir={path}')
    assert str(error.value) == f'--output_dir {path} {words}'
  assert a_file.read_text() == ''


@pytest.mark.parametrize('mode', ['in_memory', 'multi_threading'])
def test_ctrl_c_ends_the_job_in_one_line_and_deletes_its_version(
    tiny_demo, tmp_path, mode):
  out = tmp_path / 'out'
  job = subprocess.Popen(
      [sys.executable, '-m', 'beam_pipelines.nsynth_tfrecords',
       f'--input={tiny_demo / "nsynth-test"}', f'--output_dir={out}',
       '--embedding=none', f'--direct_running_mode={mode}', '--noprogress'],
      cwd=REPO, stderr=subprocess.PIPE, text=True)
  said = [job.stderr.readline()]
  while 'writing' not in said[-1] and said[-1]:
    said.append(job.stderr.readline())
  job.send_signal(signal.SIGINT)
  said += job.stderr.read().splitlines()
  assert job.wait(timeout=120) == 130, said
  assert said[-1] == 'error: interrupted'
  assert not any('Traceback' in line for line in said), said
  assert os.listdir(out) == []


def test_a_failing_pipeline_leaves_no_partial_output(tiny_demo, tmp_path,
                                                     monkeypatch):
  def explode(*args, **kwargs):
    raise RuntimeError('worker lost')
  monkeypatch.setattr(writing, 'to_serialized_examples',
                      explode)
  out = tmp_path / 'out'
  with pytest.raises(Exception, match='worker lost'):
    run(f'--input={tiny_demo / "nsynth-valid"}', f'--output_dir={out}')
  assert os.listdir(out) == []


def test_a_note_lost_on_the_way_is_never_written(tiny_demo, tmp_path,
                                                 monkeypatch):
  """Should the runner drop a note (Beam's multi_threading engine did, see
  beam_pipelines.local_runner), the notes do not add up and the dataset
  already there stays as it was."""
  out = tmp_path / 'out'
  test_split = f'--input={tiny_demo / "nsynth-test"}'
  first = run(test_split, f'--output_dir={out}', '--embedding=none')
  validated_note = reading.validated_note
  dropped = []

  def drop_one_note_quietly(item, *args):
    if not dropped:
      dropped.append(item[0])
      return iter(())
    return validated_note(item, *args)

  monkeypatch.setattr(reading, 'validated_note', drop_one_note_quietly)
  with pytest.raises(RuntimeError, match=r'notes were read but \d+ are '
                     r'accounted for .* no dataset was written'):
    run(test_split, f'--output_dir={out}', '--embedding=none', '--overwrite')
  assert versions(out) == [os.path.basename(first.dataset_dir)]
  assert manifest_lib.read(str(dataset(out))) == first.manifest
  assert len(read_split(out, 'test')[schema.LABEL]) == \
      first.manifest.splits['test'].num_examples


def test_a_full_disk_is_one_line_and_keeps_the_older_dataset(
    tiny_demo, tmp_path, monkeypatch, caplog):
  from beam_pipelines import tfrecord_sink
  out = tmp_path / 'out'
  args = [f'--input={tiny_demo / "nsynth-test"}', f'--output_dir={out}',
          '--nojit_compile', '--embedding=none']
  first = run(*args)

  def disk_full(record):
    raise OSError(28, 'No space left on device')

  monkeypatch.setattr(tfrecord_sink, 'tfrecord_frame', disk_full)
  with pytest.raises(output.OutputDirError) as error:
    run(*args, '--overwrite')
  message = str(error.value)
  assert message.startswith(f'--output_dir {out}: the disk is full')
  assert '\n' not in message and 'Traceback' not in message
  # Beam logs a worker's error with its traceback before re-raising it; the
  # job's line says it all.
  assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [
      r.getMessage()[:200] for r in caplog.records]
  assert versions(out) == [os.path.basename(first.dataset_dir)]
  assert manifest_lib.read(str(dataset(out))) == first.manifest

  # The disk fills exactly as the manifest, the version's last file, is
  # written: the same line, naming --output_dir.
  monkeypatch.undo()

  def full_for_the_manifest(path, *args, **kwargs):
    if '.manifest.json.' in str(path):
      raise OSError(28, 'No space left on device')
    return open(path, *args, **kwargs)
  monkeypatch.setattr(output, 'open', full_for_the_manifest, raising=False)
  with pytest.raises(output.OutputDirError,
                     match=f'^--output_dir {out}: the disk is full'):
    run(*args, '--overwrite')
  assert versions(out) == [os.path.basename(first.dataset_dir)]


def test_single_input_split_by_instrument_is_disjoint(tiny_demo, tmp_path):
  out = tmp_path / 'out'
  job = run(f'--input={tiny_demo / "nsynth-train"}', f'--output_dir={out}',
            '--split_single_input=instrument', '--split_fractions=0.6,0.2,0.2')
  instruments = {s: set(i.decode() for i in read_split(out, s)[
      schema.INSTRUMENT]) for s in ('train', 'valid', 'test')}
  assert not instruments['train'] & instruments['valid']
  assert not instruments['train'] & instruments['test']
  assert not instruments['valid'] & instruments['test']
  assert job.manifest.split_method.name == 'instrument'
  assert job.manifest.split_method.instrument_disjoint is True


def test_blog_style_note_split_is_labelled_as_leaking(tiny_demo, tmp_path):
  out = tmp_path / 'out'
  job = run(f'--input={tiny_demo / "nsynth-train"}', f'--output_dir={out}',
            '--split_single_input=note', '--split_fractions=0.5,0.25,0.25')
  method = job.manifest.split_method
  assert method.name == 'note'
  assert method.instrument_disjoint is False
  assert method.instruments_in_several_splits > 0
  assert 'overstates' in method.description


def test_filters_and_cap_are_options(tiny_demo, tmp_path):
  out = tmp_path / 'out'
  job = run(f'--input={tiny_demo / "nsynth-train"}', f'--output_dir={out}',
            '--sources=acoustic,electronic,synthetic', '--drop_families=',
            '--max_notes_per_family=3', '--keep_audio')
  manifest = job.manifest
  assert manifest.vocabulary.num_classes == 11
  assert all(0 < n <= 3 for n in manifest.splits['train'].families.values())
  assert manifest.accounting.filtered.get('cap', 0) > 0
  assert 'source' not in manifest.accounting.filtered
  records = read_split(out, 'train')
  assert len(records[schema.LABEL]) == manifest.splits['train'].num_examples
  with_audio = tf.data.TFRecordDataset(
      glob.glob(str(dataset(out) / 'train-*')), compression_type='GZIP').batch(4)
  parsed = schema.parse_batch(next(iter(with_audio)), MFCC_SHAPE,
                              manifest.audio_samples)
  assert parsed[schema.AUDIO].shape == (4, 64000)


@pytest.mark.parametrize('flag,message', [
    ('--compression_level=12', r'--compression_level=12: 12 is not an integer '
     r'in the range \[0, 3\]'),
    ('--split_single_input=instrument', 'needs exactly one --input'),
    ('--sources=wooden', 'Unknown NSynth sources'),
    ('--batch_size=0', '--batch_size=0: 0 is not a positive integer'),
    ('--split_fractions=0.5,0.5', 'three non-negative numbers'),
    ('--embedding=MTT_vgg', "--embedding: 'MTT_vgg' names no representation "
     r'\(MTT_musicnn or MSD_musicnn, optionally :LAYER'),
    ('--embedding=MTT_musicnn:pool5', "--embedding: layer 'pool5' is not"),
    ('--embedding=MTT_musicnn,MTT_musicnn:midend',
     '--embedding: representation mtt_musicnn_midend is named twice'),
    ('--embedding=none,MSD_musicnn', "--embedding: 'none' names no"),
])
def test_bad_flags_fail_before_any_work_naming_the_flag(flag, message,
                                                        tmp_path):
  with pytest.raises(flags.Error, match=message):
    nsynth_tfrecords.parse_args([
        '--input=/a/nsynth-train,/a/nsynth-test',
        f'--output_dir={tmp_path / "never-created"}', flag])
  assert not (tmp_path / 'never-created').exists()


@pytest.mark.parametrize('value,keys', [
    ('none', ()),
    ('MSD_musicnn', ('msd_musicnn_midend',)),
    ('MTT_musicnn:midend,MSD_musicnn:temporal',
     ('mtt_musicnn_midend', 'msd_musicnn_temporal')),
])
def test_embedding_names_the_representations_in_their_order(value, keys,
                                                            tmp_path):
  config, _ = nsynth_tfrecords.parse_args([
      '--input=/a/nsynth-train', f'--output_dir={tmp_path}',
      f'--embedding={value}'])
  assert tuple(r.key for r in config.representations) == keys


def test_the_command_ends_bad_input_with_one_line_naming_it(tmp_path):
  out = tmp_path / 'out'
  result = subprocess.run(
      [sys.executable, '-m', 'beam_pipelines.nsynth_tfrecords',
       f'--input={tmp_path / "nsynth-nowhere"}', f'--output_dir={out}'],
      cwd=REPO, capture_output=True, text=True, timeout=120)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines() == [
      f'error: Input directory {tmp_path / "nsynth-nowhere"} does not exist']
  assert result.stdout == ''


def test_tensorflow_datasets_loads_the_uncompressed_output(tiny_demo,
                                                           tmp_path):
  import tensorflow_datasets as tfds

  from trainer import data_checks
  from trainer import input_pipeline
  out = tmp_path / 'out'
  inputs = ','.join(str(tiny_demo / f'nsynth-{s}')
                    for s in ('train', 'valid', 'test'))
  job = run(f'--input={inputs}', f'--output_dir={out}', '--compression=none',
            '--num_shards=2')
  builder = tfds.builder_from_directory(job.dataset_dir)   # a version
  assert builder.info.features['label'].names == list(
      job.manifest.vocabulary.families)
  for split in ('train', 'valid', 'test'):
    ours = read_split(out, split, compression=manifest_lib.NO_COMPRESSION)
    by_tfds = {x['note_str'].decode(): x
               for x in tfds.as_numpy(builder.as_dataset(split=split))}
    assert len(by_tfds) == job.manifest.splits[split].num_examples
    for i, note in enumerate(ours[schema.NOTE_STR]):
      record = by_tfds[note.decode()]
      assert record['label'] == ours[schema.LABEL][i]
      np.testing.assert_array_equal(record['mfcc'], ours[schema.MFCC][i])
  # The files TFDS needs are the job's own: --overwrite replaces them.
  assert {'dataset_info.json', 'features.json', 'label.labels.txt'} <= set(
      job.manifest.files)
  # And the trainer reads the same uncompressed output.
  manifest = manifest_lib.read(str(dataset(out)))
  files = input_pipeline.split_files(job.dataset_dir, manifest, 'train')
  assert data_checks.validate_split(files, manifest, 'train') == \
      manifest.splits['train'].num_examples


def _all_splits(tiny_demo):
  return ','.join(str(tiny_demo / f'nsynth-{s}')
                  for s in ('train', 'valid', 'test'))


def _records_by_copy(out, split):
  records = read_split(out, split)
  return {(n.decode(), int(a)): records[schema.MFCC][i]
          for i, (n, a) in enumerate(zip(records[schema.NOTE_STR],
                                         records[schema.AUGMENTATION]))}


def test_augmented_copies_are_deterministic_train_only_and_accounted_apart(
    tiny_demo, tmp_path):
  # The copies' MFCCs show what the chain did; without the embedding the
  # three jobs take a third of the time.
  jobs = {name: run(f'--input={_all_splits(tiny_demo)}',
                    f'--output_dir={tmp_path / name}', '--augment_copies=2',
                    f'--augment_seed={seed}', '--embedding=none')
          for name, seed in (('a', 7), ('again', 7), ('other_seed', 8))}
  job = jobs['a']
  train = _records_by_copy(tmp_path / 'a', 'train')
  originals = sorted(n for n, copy in train if copy == 0)
  assert sorted(train) == sorted((n, c) for n in originals for c in (0, 1, 2))
  for split in ('valid', 'test'):  # Never augmented.
    assert {copy for _, copy in _records_by_copy(tmp_path / 'a', split)} == {0}
  # Deterministic per note and seed; another seed draws other copies.
  again = _records_by_copy(tmp_path / 'again', 'train')
  other = _records_by_copy(tmp_path / 'other_seed', 'train')
  for key, mfcc in train.items():
    np.testing.assert_array_equal(mfcc, again[key])
    if key[1] == 0:
      np.testing.assert_array_equal(mfcc, other[key])
  differing = [k for k in train if k[1] and not np.allclose(train[k],
                                                            other[k])]
  # (A silent note stays silent whatever the chain: its copies may agree.)
  assert len(differing) > 0.9 * 2 * len(originals)
  # Each note read is accounted for once; the copies are counted apart.
  entries = sum(len(json.loads((tiny_demo / f'nsynth-{s}' /
                                'examples.json').read_text()))
                for s in ('train', 'valid', 'test'))
  accounting = job.manifest.accounting
  assert accounting.read == entries
  assert accounting.written['train'] == len(originals)
  assert accounting.augmented == {'train': 2 * len(originals)}
  assert job.counters['augmented_train'] == 2 * len(originals)
  summary = job.manifest.splits['train']
  assert (summary.num_examples, summary.num_augmented) == (
      3 * len(originals), 2 * len(originals))
  recorded = job.manifest.augmentation
  assert (recorded.copies, recorded.seed, recorded.split) == (
      2, 7, 'train')
  assert recorded.ranges['noise_snr_db'] == [20.0, 45.0]
  assert f'plus {2 * len(originals)} augmented' in \
      accounting_table.summary_table(job, str(tmp_path / 'a'))


def test_leave_one_library_out_tests_an_unheard_library_and_programs(
    tiny_demo, tmp_path):
  from demo_data import notes as demo_notes
  from tests.conftest import TINY_LIBRARIES
  program_of = {i.instrument_str: (i.gm.program, i.gm.source)
                for i in demo_notes.assign_instruments(TINY_LIBRARIES)}
  out = tmp_path / 'out'
  job = run(f'--input={_all_splits(tiny_demo)}', f'--output_dir={out}',
            '--holdout_library=merlin')
  instruments = {s: {i.decode() for i in read_split(out, s)[
      schema.INSTRUMENT]} for s in ('train', 'valid', 'test')}
  library = lambda name: name.rsplit('_', 2)[-2]
  assert {library(i) for i in instruments['test']} == {'merlin'}
  assert 'merlin' not in {library(i) for i in
                          instruments['train'] | instruments['valid']}
  tested = {program_of[i] for i in instruments['test']}
  trained = {program_of[i] for i in instruments['train']}
  assert tested and not tested & trained
  method = job.manifest.split_method
  assert (method.name, method.holdout_library,
          method.instrument_disjoint) == ('library', 'merlin', True)
  assert set(job.manifest.splits['test'].libraries) == {'merlin'}
  assert set(job.manifest.splits['train'].libraries) == {'timgm6mb'}
  assert job.manifest.accounting.filtered['holdout'] > 0
  with pytest.raises(job_lib.JobInputError,
                     match="not a library of the inputs; their examples.json "
                           "name \\['merlin', 'timgm6mb'\\]"):
    run(f'--input={_all_splits(tiny_demo)}', f'--output_dir={tmp_path / "x"}',
        '--holdout_library=fluidr3')


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


def test_recordings_become_windows_accounted_for_apart_from_notes(
    tiny_demo, tiny_phrases, tmp_path):
  phrases = tmp_path / 'phrases-test'
  shutil.copytree(tiny_phrases / 'phrases-test', phrases)
  labels = json.loads((phrases / 'labels.json').read_text())
  good = dict(labels)
  first = sorted(labels)[0]
  # A recording that cannot be decoded, a label that names no family, and
  # a family the default filters drop: each accounted for, none fatal.
  (phrases / 'audio' / 'junk.ogg').write_bytes(b'not audio at all' * 50)
  labels['junk.ogg'] = dict(labels[first])
  labels['kazoo.wav'] = dict(labels[first], family='kazoo')
  shutil.copy(phrases / 'audio' / first, phrases / 'audio' / 'choir.wav')
  labels['choir.wav'] = dict(labels[first], family='vocal')
  (phrases / 'labels.json').write_text(json.dumps(labels))
  out = tmp_path / 'out'
  job = run(f'--input={tiny_demo / "nsynth-test"}', f'--output_dir={out}',
            f'--recordings={phrases}', '--window_hop_seconds=2')
  recorded = job.manifest.accounting.recordings
  assert recorded.read == len(labels)
  assert recorded.windowed == {'test': len(good)}
  assert recorded.filtered == {'family': 1}
  assert recorded.dead_lettered == {'invalid_metadata': 1,
                                       'not_audio': 1}
  # Notes keep their own accounting.
  assert job.manifest.accounting.read == len(json.loads(
      (tiny_demo / 'nsynth-test' / 'examples.json').read_text()))
  records = read_split(out, 'test')
  windows = [n.decode() for n in records[schema.NOTE_STR] if b'@' in n]
  assert len(windows) == recorded.windows_written['test']
  # Each recording's windows start every 2 s and carry its label.
  from nsynth_contracts import audio_decoding
  name = sorted(good)[1]
  seconds = audio_decoding.read_file(str(phrases / 'audio' / name),
                                     16000).seconds
  starts = sorted(float(w.split('@')[1][:-1]) for w in windows
                  if w.startswith(name + '@'))
  assert starts[0] == 0.0 and np.allclose(np.diff(starts), 2.0)
  assert starts[-1] + 4.0 >= seconds > starts[-1]
  families = {n.decode(): f.decode() for n, f in zip(records[schema.NOTE_STR],
                                                    records[schema.FAMILY])}
  assert {families[w] for w in windows if w.startswith(name + '@')} == {
      good[name]['family']}
  letters = [json.loads(line) for path in glob.glob(
      str(dataset(out) / 'dead_letters' / '*.jsonl')) for line in open(path)]
  assert {(d['note_str'], d['what']) for d in letters} == {
      ('junk.ogg', 'recording'), ('kazoo.wav', 'recording')}


def test_entries_too_deep_or_with_huge_numbers_cost_only_themselves(
    split_copy, tmp_path):
  directory = split_copy('valid')
  text = (directory / 'examples.json').read_text()
  entries = json.loads(text)
  first = entries[sorted(entries)[0]]
  deep_entry = json.dumps(dict(first, note_str='deep'))[:-1]
  huge_entry = json.dumps({k: v for k, v in dict(
      first, note_str='huge').items() if k != 'instrument'})[:-1]
  deep = '{"a": ' * 600 + '1' + '}' * 600
  text = (text.rstrip()[:-1] + f', "deep": {deep_entry}, "x": {deep}}}' +
          f', "huge": {huge_entry}, "instrument": {"9" * 5000}}}}}')
  (directory / 'examples.json').write_text(text)
  out = tmp_path / 'out'
  job = run(f'--input={directory}', f'--output_dir={out}')
  letters = {json.loads(line)['note_str']: json.loads(line)['reason']
             for path in glob.glob(str(dataset(out) / 'dead_letters' / '*.jsonl'))
             for line in open(path)}
  assert 'deeper than 32 levels' in letters['deep']
  assert 'more than 30 digits' in letters['huge']
  assert job.manifest.accounting.read == len(entries) + 2
  assert job.manifest.accounting.written['valid'] > 0


def test_hostile_recordings_cost_only_themselves(tiny_phrases, tmp_path):
  phrases = tmp_path / 'phrases-test'
  shutil.copytree(tiny_phrases / 'phrases-test', phrases)
  text = (phrases / 'labels.json').read_text()
  labels = json.loads(text)
  label = json.dumps(labels[sorted(labels)[0]])
  audio_dir = phrases / 'audio'
  elsewhere = tmp_path / 'elsewhere.wav'
  elsewhere.write_bytes(wav_bytes(np.zeros(16000)))
  (audio_dir / 'outside.wav').symlink_to(elsewhere)
  os.mkfifo(audio_dir / 'fifo.wav')
  # A header declaring 4 GB of data: tensorflow-io would abort the process.
  (audio_dir / 'huge.wav').write_bytes(
      raw_wav(data=bytes(3200))[:40] + struct.pack('<I', 0xFFFFFFF0) +
      bytes(3200))
  (audio_dir / 'eight_bit.wav').write_bytes(wav_bytes(
      0.3 * np.sin(np.arange(16000 * 6) / 8.0), sample_width=1))
  names = ['outside.wav', 'fifo.wav', 'huge.wav', 'eight_bit.wav']
  text = text.rstrip()[:-1] + ''.join(f', "{n}": {label}' for n in names)
  # A name that is not Unicode, and a key given twice with other labels.
  text += (f', "\\ud800.wav": {label}, "dup.wav": {label}, "dup.wav": '
           f'{json.dumps(dict(json.loads(label), family="reed"))}}}')
  shutil.copy(audio_dir / sorted(labels)[0], audio_dir / 'dup.wav')
  (phrases / 'labels.json').write_text(text)
  out = tmp_path / 'out'
  job = run(f'--input={_first_notes(tmp_path)}', f'--output_dir={out}',
            f'--recordings={phrases}')
  letters = {json.loads(line)['note_str']: json.loads(line)['kind']
             for path in glob.glob(str(dataset(out) / 'dead_letters' / '*.jsonl'))
             for line in open(path)}
  assert letters == {'outside.wav': 'outside_dataset', 'fifo.wav':
                     'not_a_file', 'huge.wav': 'truncated',
                     '\\ud800.wav': 'invalid_metadata',
                     'dup.wav': 'duplicate_note'}
  recorded = job.manifest.accounting.recordings
  assert recorded.read == len(labels) + len(names) + 3
  assert recorded.windowed['test'] == len(labels) + 1  # + eight_bit.wav


def _first_notes(tmp_path):
  """A one-note NSynth split, for jobs that are about their recordings."""
  split = tmp_path / 'nsynth-valid'
  (split / 'audio').mkdir(parents=True)
  entry = {'note_str': 'n-060-100', 'instrument': 0, 'instrument_str': 'n',
           'pitch': 60, 'velocity': 100, 'instrument_family_str': 'guitar',
           'instrument_source_str': 'acoustic'}
  (split / 'examples.json').write_text(json.dumps({'n-060-100': entry}))
  (split / 'audio' / 'n-060-100.wav').write_bytes(
      wav_bytes(0.3 * np.sin(np.arange(64000) / 5.0)))
  return split


@pytest.mark.parametrize('flag', ['--input', '--output_dir'])
def test_a_cloud_path_without_its_file_system_is_one_line(tiny_demo,
                                                          tmp_path, flag):
  paths = {'--input': str(tiny_demo / 'nsynth-test'),
           '--output_dir': str(tmp_path / 'out')}
  paths[flag] = 'hdfs://namenode/nsynth-test'
  with pytest.raises(job_lib.JobInputError) as error:
    run(*[f'{f}={p}' for f, p in paths.items()])
  assert str(error.value).startswith(
      f'{flag} hdfs://namenode/nsynth-test: this installation has no '
      f'file system for hdfs:// paths')
  assert not (tmp_path / 'out').exists()


def test_a_run_killed_while_writing_its_manifest_leaves_no_half_manifest(
    tiny_demo, tmp_path, monkeypatch):
  """The manifest is written whole or not at all: a run that dies while
  writing it (here its write fails midway, and the clean-up a kill would
  skip is skipped) leaves a version readers skip, not a truncated manifest
  that readers and later --overwrite runs would choke on."""
  out = tmp_path / 'out'
  args = [f'--input={tiny_demo / "nsynth-test"}', f'--output_dir={out}',
          '--embedding=none']
  first = run(*args)
  real_open = open

  class DiesMidway:
    def __init__(self, handle):
      self._handle = handle
    def __enter__(self):
      return self
    def __exit__(self, *exc_info):
      self._handle.close()
    def write(self, data):
      self._handle.write(data[:len(data) // 2])
      raise KeyboardInterrupt('killed')

  def opened(path, *args, **kwargs):
    handle = real_open(path, *args, **kwargs)
    return DiesMidway(handle) if '.manifest.json.' in str(path) else handle

  # Where the output files open what they write on a local disk.
  monkeypatch.setattr(output, 'open', opened, raising=False)
  monkeypatch.setattr(versioned_output, 'abandon', lambda version: None)
  with pytest.raises(KeyboardInterrupt):
    run(*args, '--overwrite')
  monkeypatch.undo()
  assert dataset(out) == pathlib.Path(first.dataset_dir)
  assert len(versions(out)) == 2    # the dead run's version, skipped
  rerun = run(*args, '--overwrite')
  assert dataset(out) == pathlib.Path(rerun.dataset_dir)


def test_overwrite_tolerates_another_run_deleting_the_same_old_dataset(
    tiny_demo, tmp_path):
  """Two --overwrite runs replace the same older dataset; whichever deletes
  a file second finds it gone, which is what it wanted."""
  out = tmp_path / 'out'
  first = run(f'--input={tiny_demo / "nsynth-test"}', f'--output_dir={out}',
              '--embedding=none')
  version = versioned_output.start(str(out), overwrite=True)
  os.remove(os.path.join(first.dataset_dir, 'manifest.json'))   # the other
  os.remove(os.path.join(first.dataset_dir, first.manifest.files[-1]))
  said = versioned_output.replace_older(version)
  assert said == [f'Deleted the dataset it replaces, {first.dataset_dir} '
                  f'({len(first.manifest.files) + 1} files)']
  assert not os.path.exists(first.dataset_dir)
