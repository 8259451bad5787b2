"""Poisoned or inconsistent data, and job directories that are contended,
read-only or interrupted while a checkpoint is written.

Each case ends in one line naming the culprit (the shard and record, the
split, the directory, the checkpoint), and nothing non-finite or half
written is kept: no best model or backup from NaN weights, no
finished.json, no export, no empty model directory.
"""

import contextlib
import dataclasses
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
import zlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from nsynth_common import directory_lock
from nsynth_contracts import manifest as manifest_lib
from trainer import data_checks
from trainer import input_pipeline
from trainer import job_layout
from trainer import models
from trainer import recipes
from trainer import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOT_FINITE = ('mfcc holds NaN, Inf or a magnitude beyond 1e+06, which no '
              'mfcc can have: nothing can be learned from it; write the '
              'data again with nsynth-tfrecords')


def quick_config(data_dir, job_dir, **overrides):
  fields = dict(data_dir=str(data_dir), job_dir=str(job_dir),
                model='stats_mlp', epochs=3, batch_size=16, seed=1,
                eval_splits=('valid',))
  fields.update(overrides)
  return train.TrainConfig(**fields)


def command_flags(data_dir, job_dir, *more):
  return [f'--data_dir={data_dir}', f'--job_dir={job_dir}',
          '--model=stats_mlp', '--epochs=3', '--batch_size=16',
          '--eval_splits=valid', *more]


def run_command(module, *flags):
  return subprocess.run([sys.executable, '-m', module, *flags], cwd=REPO,
                        capture_output=True, text=True, timeout=300)


def one_line_error(result) -> str:
  """The command's only line of output, an error in our words."""
  assert result.returncode == 1, result.stderr[-3000:]
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1, result.stderr[-3000:]
  assert lines[0].startswith('error: ')
  assert '{{' not in lines[0] and 'Graph execution' not in lines[0]
  return lines[0]


def rewrite_record(shard, index, change):
  """Rewrites one record of a GZIP shard; returns the record's note_str."""
  records = [r.numpy() for r in tf.data.TFRecordDataset(str(shard), 'GZIP')]
  example = tf.train.Example.FromString(records[index])
  change(example)
  records[index] = example.SerializeToString()
  with tf.io.TFRecordWriter(str(shard), 'GZIP') as writer:
    for record in records:
      writer.write(record)
  return example.features.feature['note_str'].bytes_list.value[0].decode()


def poison(data_dir, value, split='train', index=5):
  """One value of one record's MFCCs becomes `value`: (shard, note_str)."""
  shard = sorted(data_dir.glob(f'{split}-*'))[-1]
  def change(example):
    example.features.feature['mfcc'].float_list.value[100] = value
  return shard, rewrite_record(shard, index, change)


def rewrite_manifest(data_dir, change):
  path = data_dir / 'manifest.json'
  data = json.loads(path.read_text())
  change(data)
  path.write_text(json.dumps(data))


def history_epochs(job_dir):
  return [int(row['epoch']) for row in job_layout.read_history(str(job_dir))]


def all_finite(model):
  return all(np.isfinite(w.numpy()).all() for w in model.weights)


# Non-finite features.

@pytest.mark.parametrize('value', [np.nan, np.inf, -np.inf, 1e30, -2e6])
def test_validation_names_the_shard_and_note_of_a_non_finite_mfcc(
    value, tfrecords_copy):
  shard, note = poison(tfrecords_copy, value)
  manifest = manifest_lib.read(str(tfrecords_copy))
  files = input_pipeline.split_files(str(tfrecords_copy), manifest, 'train')
  with pytest.raises(input_pipeline.DataError) as error:
    data_checks.validate_split(files, manifest, 'train')
  assert str(error.value) == f'{shard}, record 6 ({note!r}): {NOT_FINITE}'


@pytest.mark.parametrize('damage,problem', [
    ('nan', NOT_FINITE.replace('mfcc', 'audio')),
    ('short', "audio holds 63999 samples, not the manifest's 64000"),
])
def test_validation_checks_the_kept_audio_too(damage, problem,
                                              tfrecords_copy):
  """As if written with --keep_audio: every valid record has a waveform."""
  samples = 64_000
  rewrite_manifest(tfrecords_copy, lambda d: d.update(audio_samples=samples))
  shards = sorted(tfrecords_copy.glob('valid-*'))
  for shard in shards:
    count = sum(1 for _ in tf.data.TFRecordDataset(str(shard), 'GZIP'))
    for index in range(count):
      rewrite_record(shard, index, lambda e: e.features.feature[
          'audio'].float_list.value.extend([0.0] * samples))
  def spoil(example):
    audio = example.features.feature['audio'].float_list.value
    if damage == 'nan':
      audio[3] = np.nan
    else:
      del audio[-1]
  note = rewrite_record(shards[1], 2, spoil)
  manifest = manifest_lib.read(str(tfrecords_copy))
  with pytest.raises(input_pipeline.DataError) as error:
    data_checks.validate_split([str(s) for s in shards], manifest,
                                  'valid')
  assert str(error.value) == f'{shards[1]}, record 3 ({note!r}): {problem}'


@pytest.mark.slow
def test_the_trainer_refuses_poisoned_data_before_training(tfrecords_copy,
                                                           tmp_path):
  shard, note = poison(tfrecords_copy, np.nan)
  job_dir = tmp_path / 'job'
  result = run_command('trainer.task',
                       *command_flags(tfrecords_copy, job_dir))
  assert one_line_error(result) == (
      f'error: {shard}, record 6 ({note!r}): {NOT_FINITE}')
  assert not job_dir.exists()


@pytest.mark.slow
def test_without_validation_training_stops_at_the_poison_naming_it(
    tfrecords_copy, tmp_path):
  """Here the loss turns NaN; with seed_cnn it stays finite (cross-entropy
  clips the probabilities) while every weight turns NaN: both stop it."""
  shard, note = poison(tfrecords_copy, np.nan)
  job_dir = tmp_path / 'job'
  with pytest.raises(input_pipeline.DataError) as error:
    train.train(quick_config(tfrecords_copy, job_dir, validate_data=False))
  message = str(error.value)
  assert message.startswith(('training stopped at epoch 1, batch ',
                             'training stopped at the end of epoch 1: '))
  assert ('loss became nan' in message or
          'the weights hold NaN or Inf' in message)
  assert message.endswith(
      f'Nothing of that epoch was kept; the data is at fault: {shard}, '
      f'record 6 ({note!r}): {NOT_FINITE}')
  # Nothing of the poisoned epoch was recorded, and nothing says finished.
  assert history_epochs(job_dir) == []
  assert sorted(os.listdir(job_dir / 'checkpoints')) == []
  assert not (job_dir / 'finished.json').exists()
  assert not (job_dir / 'eval').exists()


@pytest.mark.slow
def test_a_finite_but_impossible_validation_value_is_refused_before_training(
    tfrecords_copy, tmp_path):
  """A 1e30 is finite, yet it makes val_loss NaN: the trainer must not
  blame the learning rate for it."""
  shard, note = poison(tfrecords_copy, 1e30, split='valid', index=1)
  job_dir = tmp_path / 'job'
  with pytest.raises(input_pipeline.DataError) as error:
    train.train(quick_config(tfrecords_copy, job_dir))
  assert str(error.value) == f'{shard}, record 2 ({note!r}): {NOT_FINITE}'


@pytest.mark.slow
def test_without_validation_a_poisoned_validation_record_is_named(
    tfrecords_copy, tmp_path):
  shard, note = poison(tfrecords_copy, np.nan, split='valid', index=1)
  with pytest.raises(input_pipeline.DataError) as error:
    train.train(quick_config(tfrecords_copy, tmp_path / 'job',
                             validate_data=False))
  message = str(error.value)
  assert 'learning_rate' not in message
  assert message.endswith(
      f'Nothing of that epoch was kept; the data is at fault: {shard}, '
      f'record 2 ({note!r}): {NOT_FINITE}')


class _PoisonWeightsAtEpochEnd(keras.callbacks.Callback):
  """Makes one weight NaN at the end of an epoch, after its loss was
  logged finite, as a poisoned last step of the epoch would."""

  def __init__(self, epoch):
    super().__init__()
    self.epoch = epoch

  def on_epoch_end(self, epoch, logs=None):
    if epoch == self.epoch:
      weight = self.model.trainable_weights[0]
      weight.assign(np.full(weight.shape, np.nan, weight.dtype))


@pytest.mark.slow
def test_weights_gone_non_finite_are_never_recorded_and_a_rerun_resumes(
    tiny_tfrecords, tmp_path, monkeypatch):
  job_dir = tmp_path / 'job'
  config = quick_config(tiny_tfrecords, job_dir)
  fit = keras.Model.fit

  def fit_poisoned_in_epoch_2(self, *args, callbacks=(), **kwargs):
    return fit(self, *args, callbacks=[_PoisonWeightsAtEpochEnd(1),
                                       *callbacks], **kwargs)

  with monkeypatch.context() as patch:
    patch.setattr(keras.Model, 'fit', fit_poisoned_in_epoch_2)
    with pytest.raises(ValueError) as error:
      train.train(config)
  assert str(error.value).startswith(
      'training stopped at the end of epoch 2: the weights hold NaN or Inf '
      '(first ')
  assert str(error.value).endswith(
      'Nothing of that epoch was kept. The data was checked, '
      'so --learning_rate 0.001 is likely too high for --model stats_mlp: '
      'train again with a lower one and --overwrite')
  # Epoch 2 reached neither the history nor the best model nor the backup.
  assert history_epochs(job_dir) == [0]
  assert all_finite(models.load(job_layout.best_model_path(str(job_dir))))
  assert not (job_dir / 'finished.json').exists()
  first_epoch = (job_dir / 'history.csv').read_text().splitlines()[:2]

  # The same command again goes on from epoch 1's finite backup.
  train.train(config)
  assert history_epochs(job_dir) == [0, 1, 2]
  assert (job_dir / 'history.csv').read_text().splitlines()[:2] == \
      first_epoch
  assert all_finite(models.load(job_layout.best_model_path(str(job_dir))))
  assert (job_dir / 'finished.json').exists()


# The export.

def _job_with_best_model(job_dir, data_dir, model):
  (job_dir / 'checkpoints').mkdir(parents=True)
  model.save(job_dir / 'checkpoints' / 'best.keras')
  (job_dir / 'job_config.json').write_text(json.dumps({
      'data_dir': str(data_dir), 'model': 'stats_mlp',
      'train_split': 'train'}))
  # Finished, as a run that saved it would be: the export says nothing of
  # an unfinished run then, only what is wrong with the model.
  (job_dir / 'finished.json').write_text(json.dumps({'epochs_trained': 1}))
  return job_dir / 'checkpoints' / 'best.keras'


@pytest.mark.slow
def test_export_refuses_non_finite_weights_in_one_line_leaving_nothing(
    tiny_tfrecords, tmp_path):
  model = recipes.build('stats_mlp', manifest_lib.read(str(tiny_tfrecords)))
  kernel = model.trainable_weights[-2]
  values = kernel.numpy()
  values[0, 0] = np.nan
  kernel.assign(values)
  checkpoint = _job_with_best_model(tmp_path / 'job', tiny_tfrecords, model)
  exports = tmp_path / 'exports'
  result = run_command('serving.export', f'--job_dir={tmp_path / "job"}',
                       f'--export_base={exports}')
  assert one_line_error(result) == (
      f'error: {checkpoint} holds NaN or Inf in its weights (first '
      f'{kernel.path}); it cannot be served: train again')
  assert not exports.exists()


@pytest.mark.slow
def test_a_failed_export_leaves_no_directory_it_created(tiny_tfrecords,
                                                        tmp_path,
                                                        monkeypatch):
  from serving import export_check
  from serving import exporter
  manifest = manifest_lib.read(str(tiny_tfrecords))
  model = recipes.build('stats_mlp', manifest)

  def disagree(*args, **kwargs):
    raise AssertionError('the reloaded export disagrees with the model')

  monkeypatch.setattr(export_check, 'verify_export', disagree)
  base = tmp_path / 'exports'
  (base / 'another_model' / '1').mkdir(parents=True)
  with pytest.raises(AssertionError):
    exporter.export_model(model, manifest, str(base), 'nsynth_instrument')
  assert sorted(os.listdir(base)) == ['another_model']
  with pytest.raises(AssertionError):
    exporter.export_model(model, manifest, str(tmp_path / 'new' / 'base'),
                        'nsynth_instrument')
  assert sorted(os.listdir(tmp_path)) == ['exports']


# Damaged shards and manifests that disagree with their shards.

def readable_prefix(gzip_bytes):
  """Records whole in a truncated GZIP TFRecord file, and the byte where
  the first incomplete one starts, read with zlib alone."""
  data = zlib.decompressobj(wbits=31).decompress(gzip_bytes)
  count, position = 0, 0
  while position + 12 <= len(data):
    length = int.from_bytes(data[position:position + 8], 'little')
    end = position + 12 + length + 4  # length, its CRC, data, data CRC
    if end > len(data):
      break
    count, position = count + 1, end
  return count, position


@pytest.mark.slow
@pytest.mark.parametrize('validate', ['--validate_data', '--novalidate_data'])
def test_a_truncated_shard_is_one_line_naming_the_file_and_where(
    validate, tfrecords_copy, tmp_path):
  shard = sorted(tfrecords_copy.glob('valid-*'))[0]
  truncated = shard.read_bytes()[:-300]
  shard.write_bytes(truncated)
  count, offset = readable_prefix(truncated)
  assert count > 0
  result = run_command('trainer.task', *command_flags(
      tfrecords_copy, tmp_path / 'job', '--epochs=1', validate))
  assert one_line_error(result) == (
      f'error: truncated or corrupted record in {shard}: record {count + 1} '
      f'(at byte {offset} of the decompressed data) cannot be read; the '
      f'{count} before it can')


def _counts(change):
  def rewrite(data):
    summary = data['splits']['train']
    summary['num_examples'] += change
    summary['families']['guitar'] += change
  return rewrite


def _shape(data):
  """A manifest of 13 coefficients, its own statistics included."""
  data['feature_params']['num_mfcc'] = 13
  data['mfcc_shape'] = [126, 13]
  for name in ('mean', 'std'):
    data['normalization'][name] = data['normalization'][name][:13]


def _vocabulary_without_bass(data):
  data['label_vocabulary'] = [
      dict(entry, label_id=entry['label_id'] - 1)
      for entry in data['label_vocabulary'] if entry['family'] != 'bass']


def _families_swapped(data):
  families = data['splits']['train']['families']
  families['bass'], families['flute'] = families['flute'], families['bass']


_FIRST = '{data}/train-00000-of-00002.tfrecord.gz, record 1 ({note!r})'
# The change, what validation says, and what training says unvalidated if
# that differs; each a template over the data as it was.
_DISAGREEMENTS = {
    'more records': (
        _counts(40),
        "Split 'train': 2 shards hold {total} records but the manifest says "
        "{more}",
        None),
    'fewer records': (
        _counts(-40),
        "Split 'train': 2 shards hold {total} records but the manifest says "
        "{fewer}",
        None),
    'another shape': (
        _shape,
        _FIRST + ": mfcc_shape [126, 20] disagrees with the manifest's "
        "[126, 13]",
        None),
    'a vocabulary without bass': (
        _vocabulary_without_bass,
        _FIRST + ": a 'bass' note has label id 0, which the manifest's "
        "vocabulary calls 'brass': the vocabulary disagrees with the shards",
        # Unvalidated, the first record of the last family stops it.
        'a label id outside the vocabulary of the manifest, in {data}/'
        'train-0000'),
    'swapped family counts': (
        _families_swapped,
        "Split 'train': its shards hold {bass} bass records but the manifest "
        "says {flute}",
        None),
}


@pytest.mark.slow
@pytest.mark.parametrize('validate', [True, False],
                         ids=['validated', 'unvalidated'])
@pytest.mark.parametrize('case', sorted(_DISAGREEMENTS))
def test_a_manifest_that_disagrees_with_its_shards_is_named(
    case, validate, tfrecords_copy, tmp_path):
  change, message, unvalidated = _DISAGREEMENTS[case]
  if case == 'swapped family counts' and not validate:
    pytest.skip('only a validation counts families; training is unharmed')
  if case == 'fewer records' and not validate:
    pytest.skip('Keras takes the step count from the manifest and stops '
                'there; an epoch reads fewer records, nothing worse')
  summary = manifest_lib.read(str(tfrecords_copy)).splits['train']
  first_record = next(iter(tf.data.TFRecordDataset(
      str(tfrecords_copy / 'train-00000-of-00002.tfrecord.gz'), 'GZIP')))
  facts = dict(
      data=tfrecords_copy, total=summary.num_examples,
      more=summary.num_examples + 40, fewer=summary.num_examples - 40,
      bass=summary.families['bass'], flute=summary.families['flute'],
      note=tf.train.Example.FromString(first_record.numpy()).features
      .feature['note_str'].bytes_list.value[0].decode())
  rewrite_manifest(tfrecords_copy, change)
  job_dir = tmp_path / 'job'
  with pytest.raises(input_pipeline.DataError) as error:
    train.train(quick_config(tfrecords_copy, job_dir, epochs=1,
                             validate_data=validate))
  expected = (unvalidated if unvalidated and not validate else message)
  assert str(error.value).startswith(expected.format(**facts))
  if validate:
    assert not job_dir.exists()
  else:
    assert not (job_dir / 'finished.json').exists()


def _set(path, value):
  def change(data):
    *parents, last = path
    for key in parents:
      data = data[key]
    data[last] = value(data[last])
  return change


# What a statistic may not be, and the words naming it: a NaN or absurd
# statistic trained into "the data was checked, so --learning_rate is
# likely too high".
BAD_STATISTICS = {
    'another shape': (_set(('normalization', 'mean'), lambda v: v[:12]),
                      'its normalization mean has 12 values for 20'),
    'a NaN std': (_set(('normalization', 'std'),
                       lambda v: [float('nan')] + v[1:]),
                  'its normalization std [0] is nan'),
    'a mean of 1e300': (_set(('normalization', 'mean'),
                             lambda v: v[:3] + [1e300] + v[4:]),
                        'its normalization mean [3] is 1e+300'),
    'a negative std': (_set(('normalization', 'std'),
                            lambda v: v[:1] + [-1.0] + v[2:]),
                       'its normalization std [1] is -1.0'),
    "a representation's Inf mean": (
        _set(('representations', 0, 'normalization', 'mean'),
             lambda v: [float('inf')] + v[1:]),
        'its representations[mtt_musicnn_midend].normalization mean [0] is '
        'inf'),
}


@pytest.mark.parametrize('damage', list(BAD_STATISTICS))
def test_statistics_that_no_features_can_have_are_named(damage,
                                                        tiny_tfrecords):
  change, words = BAD_STATISTICS[damage]
  data = json.loads((tiny_tfrecords / 'manifest.json').read_text())
  change(data)
  where = 'data/manifest.json'
  with pytest.raises(input_pipeline.DataError) as error:
    data_checks.check_statistics(manifest_lib.Manifest.from_json(data), where)
  assert str(error.value).startswith(f'{where}: {words}')
  assert '\n' not in str(error.value)


def test_training_refuses_a_nan_statistic_before_anything_is_written(
    tfrecords_copy, tmp_path):
  change, words = BAD_STATISTICS['a NaN std']
  rewrite_manifest(tfrecords_copy, change)
  with pytest.raises(input_pipeline.DataError) as error:
    train.train(quick_config(tfrecords_copy, tmp_path / 'job',
                             validate_data=False))
  assert str(error.value).startswith(
      f'{tfrecords_copy}/manifest.json: {words}')
  assert not (tmp_path / 'job').exists()


def test_a_dataset_deleted_while_training_is_one_line_and_never_resumed(
    tiny_tfrecords, tmp_path, monkeypatch):
  """A later nsynth-tfrecords --overwrite deletes the version a run reads
  from disk every epoch (--cache=none): one line, not TensorFlow's
  NotFoundError; resuming then says the version is gone, not 'resume it
  with its own settings'."""
  from trainer import fit_callbacks
  out = tmp_path / 'out'
  old = out / '20200101-000000-aaaaaa'
  shutil.copytree(tiny_tfrecords, old)
  real_callbacks = fit_callbacks.callbacks

  class OverwrittenAfterTheFirstEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
      if epoch == 0:
        shutil.copytree(old, out / '20210101-000000-bbbbbb')
        shutil.rmtree(old)

  monkeypatch.setattr(fit_callbacks, 'callbacks', lambda *args, **kwargs: (
      real_callbacks(*args, **kwargs) + [OverwrittenAfterTheFirstEpoch()]))
  config = quick_config(out, tmp_path / 'job', cache='none',
                        validate_data=False)
  with pytest.raises(input_pipeline.DataError) as error:
    train.train(config)
  assert str(error.value) == (
      f'the dataset version {old} was deleted while training read it (a '
      f'later nsynth-tfrecords --overwrite replaces older versions); this run '
      f'cannot go on without it: train again with --overwrite, '
      f'--data_dir={out} reads the newest')
  monkeypatch.undo()
  with pytest.raises(job_layout.JobDirError) as error:
    train.train(config)
  assert str(error.value) == (
      f'--job_dir {tmp_path / "job"} holds an unfinished run on the dataset '
      f'version {old}, which was deleted (a later nsynth-tfrecords '
      f'--overwrite replaces older versions), so it cannot be resumed: pass '
      f'--overwrite to train again on {out / "20210101-000000-bbbbbb"}, or '
      f'choose another --job_dir')


# Job directories: contended, read-only, killed while writing.

@pytest.mark.slow
@pytest.mark.parametrize('holds', ['nothing yet', 'its unfinished run'])
def test_a_second_trainer_refuses_in_one_line_naming_the_first(
    holds, tiny_tfrecords, tmp_path):
  job_dir = tmp_path / 'job'
  job_dir.mkdir()
  if holds == 'its unfinished run':
    # The first run's settings, which are not the second one's: the live
    # run is what matters, not a difference it may still resolve.
    first = quick_config(tiny_tfrecords, job_dir, model='timbre_tcn')
    (job_dir / 'job_config.json').write_text(json.dumps(
        dataclasses.asdict(first)))
  before = sorted(os.listdir(job_dir))
  with directory_lock.DirectoryLock(str(job_dir)):  # The first trainer.
    result = run_command('trainer.task',
                         *command_flags(tiny_tfrecords, job_dir))
  assert one_line_error(result).startswith(
      f'error: --job_dir {job_dir} is in use by another run (pid '
      f'{os.getpid()} on ')
  assert sorted(os.listdir(job_dir)) == before


@contextlib.contextmanager
def read_only(directory: pathlib.Path):
  """No file can be made in `directory`: by its mode for a user; for root,
  whom modes do not stop, by the immutable attribute."""
  if os.geteuid() != 0:
    mode = directory.stat().st_mode
    directory.chmod(0o555)
    try:
      yield
    finally:
      directory.chmod(mode)
    return
  if not shutil.which('chattr') or subprocess.run(
      ['chattr', '+i', str(directory)], capture_output=True).returncode:
    pytest.skip('running as root on a file system without chattr +i')
  try:
    yield
  finally:
    subprocess.run(['chattr', '-i', str(directory)], check=True)


@pytest.mark.slow
@pytest.mark.parametrize('which', ['the job dir', 'its parent'])
def test_a_read_only_job_dir_is_one_line_naming_it(which, tiny_tfrecords,
                                                   tmp_path):
  parent = tmp_path / 'jobs'
  parent.mkdir()
  job_dir = parent / 'job'
  if which == 'the job dir':
    job_dir.mkdir()
  with read_only(job_dir if which == 'the job dir' else parent):
    result = run_command('trainer.task',
                         *command_flags(tiny_tfrecords, job_dir))
  assert one_line_error(result).startswith(
      f'error: --job_dir {job_dir} cannot be used: ')
  assert sorted(os.listdir(parent)) == (['job'] if which == 'the job dir'
                                        else [])
  assert not job_dir.exists() or not os.listdir(job_dir)


# Run as the trainer's command, with one Keras save method that, on its
# n-th call, leaves the file it wrote half written and waits to be killed:
# the state a kill in the middle of that write leaves on disk.
_KILLED_WHILE_WRITING = '''
import os, sys, time
import keras
method, at_call, marker = sys.argv[1], int(sys.argv[2]), sys.argv[3]
original = getattr(keras.Model, method)
calls = []
def half_written(self, filepath, *args, **kwargs):
  original(self, filepath, *args, **kwargs)
  calls.append(filepath)
  if len(calls) == at_call:
    with open(filepath, 'r+b') as f:
      f.truncate(os.path.getsize(filepath) // 2)
    with open(marker, 'w') as f:
      f.write(str(filepath))
    time.sleep(600)
setattr(keras.Model, method, half_written)
sys.argv = ['nsynth-train'] + sys.argv[4:]
from trainer import task
task.main()
'''


@pytest.mark.slow
@pytest.mark.parametrize('method,at_call,writing', [
    ('save', 1, 'best.keras'),              # the first best model
    ('save_weights', 2, 'weights.h5'),      # the second epoch's backup
], ids=['best model', 'backup'])
def test_a_run_killed_while_writing_a_checkpoint_resumes_whole(
    method, at_call, writing, tiny_tfrecords, tmp_path):
  job_dir = tmp_path / 'job'
  marker = tmp_path / 'writing'
  hook = tmp_path / 'killed_while_writing.py'
  hook.write_text(_KILLED_WHILE_WRITING)
  flags = command_flags(tiny_tfrecords, job_dir)
  process = subprocess.Popen(
      [sys.executable, str(hook), method, str(at_call), str(marker), *flags],
      cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
      env={**os.environ, 'PYTHONPATH': REPO})
  deadline = time.time() + 240
  while not marker.exists():
    assert process.poll() is None, 'the run ended before that write'
    assert time.time() < deadline, 'the write never came'
    time.sleep(0.1)
  process.send_signal(signal.SIGKILL)
  process.wait()
  assert marker.read_text().endswith(writing)

  resumed = run_command('trainer.task', *flags)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert history_epochs(job_dir) == [0, 1, 2]
  assert all_finite(models.load(job_layout.best_model_path(str(job_dir))))
  assert sorted(os.listdir(job_dir / 'checkpoints')) == ['best.keras']
  assert (job_dir / 'finished.json').exists()
