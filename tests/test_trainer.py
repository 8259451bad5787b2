"""The trainer: input pipeline, models, training, resume, report, errors."""

import dataclasses
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import sklearn.metrics
import tensorflow as tf

from nsynth_common import directory_lock
from nsynth_contracts import dataset_versions
from nsynth_contracts import manifest as manifest_lib
from nsynth_contracts import schema
from trainer import cluster
from trainer import input_pipeline
from trainer import job_layout
from trainer import metrics
from trainer import model_names
from trainer import models
from trainer import recipes
from trainer import report as report_lib
from trainer import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def quick_config(data_dir, job_dir, **overrides):
  fields = dict(data_dir=str(data_dir), job_dir=str(job_dir),
                model='seed_cnn', epochs=6, batch_size=16, seed=1)
  fields.update(overrides)
  return train.TrainConfig(**fields)


def test_input_pipeline_yields_what_the_manifest_promises(tiny_tfrecords):
  manifest = manifest_lib.read(str(tiny_tfrecords))
  files = input_pipeline.split_files(str(tiny_tfrecords), manifest, 'train')
  dataset = input_pipeline.make_dataset(
      files, manifest, 32, shuffle=True, seed=3, cache='memory',
      num_examples=manifest.splits['train'].num_examples)
  assert dataset.element_spec[0].shape.as_list() == [
      None, *manifest.mfcc_shape]
  assert dataset.element_spec[0].dtype == tf.float32
  assert dataset.element_spec[1].shape.as_list() == [None, 9]
  seen = np.zeros(9, np.int64)
  total = 0
  for mfcc, one_hot in dataset:
    assert np.all(np.isfinite(mfcc.numpy()))
    assert np.all(one_hot.numpy().sum(axis=1) == 1)
    seen += one_hot.numpy().sum(axis=0).astype(np.int64)
    total += len(mfcc)
  assert total == manifest.splits['train'].num_examples
  families = manifest.vocabulary.families
  assert dict(zip(families, seen.tolist())) == \
      manifest.splits['train'].families


def test_shuffling_is_seeded(tiny_tfrecords):
  manifest = manifest_lib.read(str(tiny_tfrecords))
  files = input_pipeline.split_files(str(tiny_tfrecords), manifest, 'train')
  def first_batch(seed):
    dataset = input_pipeline.make_dataset(files, manifest, 8, shuffle=True,
                                          seed=seed)
    return next(iter(dataset))[0].numpy()
  np.testing.assert_array_equal(first_batch(5), first_batch(5))
  assert not np.array_equal(first_batch(5), first_batch(6))


def test_seed_cnn_is_the_blogs_network():
  # On the seed recipe's features: 126 frames of 20 MFCCs (nsynth-tfrecords
  # --num_mfcc=20), 9 families.
  model = models.seed_cnn((126, 20), 9, keras.layers.Normalization(
      mean=0.0, variance=1.0, name='normalize_mfcc'))
  kinds = [(type(layer).__name__, getattr(layer, 'filters', None) or
            getattr(layer, 'units', None) or getattr(layer, 'rate', None))
           for layer in model.layers]
  assert kinds == [
      ('InputLayer', None), ('Normalization', None), ('Reshape', None),
      ('Conv2D', 52), ('Conv2D', 64), ('Conv2D', 132),
      ('MaxPooling2D', None), ('Dropout', 0.25), ('Flatten', None),
      ('Dense', 100), ('Dropout', 0.25), ('Dense', 64), ('Dropout', 0.25),
      ('Dense', 9)]
  conv = [layer for layer in model.layers
          if isinstance(layer, keras.layers.Conv2D)]
  assert all(layer.kernel_size == (2, 2) for layer in conv)
  assert model.layers[-3].kernel_regularizer.get_config()['l2'] == \
      pytest.approx(0.001)
  # By hand: convs (2*2*1+1)*52 + (2*2*52+1)*64 + (2*2*64+1)*132, flatten of
  # 61*8*132 into 100, 100 into 64, 64 into 9.
  expected = (5 * 52 + 209 * 64 + 257 * 132 + (61 * 8 * 132 + 1) * 100 +
              101 * 64 + 65 * 9)
  assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == \
      expected == 6_496_309


def test_the_model_normalizes_with_the_manifests_statistics(tiny_tfrecords):
  manifest = manifest_lib.read(str(tiny_tfrecords))
  layer = models.normalization_layer(manifest)
  mean = np.asarray(manifest.normalization.mean, np.float32)
  std = np.asarray(manifest.normalization.std, np.float32)
  x = np.random.default_rng(0).normal(
      mean, std, (4, *manifest.mfcc_shape)).astype(np.float32)
  np.testing.assert_allclose(layer(x).numpy(), (x - mean) / std, atol=1e-4)


@pytest.fixture(scope='module')
def trained_job(tiny_tfrecords, tmp_path_factory):
  job_dir = tmp_path_factory.mktemp('job')
  reports = train.train(quick_config(tiny_tfrecords, job_dir, epochs=8))
  return job_dir, reports


def test_short_training_learns_and_keeps_its_best_epoch(trained_job,
                                                       tiny_tfrecords):
  """Eight seeded epochs, however long they take: seed_cnn fits the training
  notes, names notes of instruments it never heard better than always
  answering their commonest family would, and the model kept (and
  reported) is the epoch with the best validation accuracy."""
  job_dir, reports = trained_job
  history = job_layout.read_history(str(job_dir))
  assert [row['epoch'] for row in history] == list(range(8))
  assert history[-1]['loss'] < history[0]['loss'] / 2
  assert reports['train']['accuracy'] > 0.75
  valid = manifest_lib.read(str(tiny_tfrecords)).splits['valid']
  commonest = max(valid.families.values()) / valid.num_examples
  assert reports['valid']['accuracy'] > 2 * commonest
  assert reports['valid']['accuracy'] == pytest.approx(
      max(row['val_accuracy'] for row in history), abs=1e-6)


def test_the_phrase_report_uses_the_models_own_features(trained_job,
                                                       tiny_phrases):
  """This job learned the seed recipe's 20 coefficients (tiny_tfrecords), not the
  default 128: the phrase report must featurise windows as the job's
  manifest says. It once used the default, and failed on the shape."""
  job_dir, _ = trained_job
  phrases_dir = tiny_phrases / 'phrases-test'
  labels = json.loads((phrases_dir / 'labels.json').read_text())
  report = report_lib.evaluate_phrases(str(job_dir), str(phrases_dir))
  assert report['num_examples'] == len(labels)
  confusion = np.array(report['confusion_matrix'][
      'rows_true_columns_predicted'])
  assert confusion.sum() == len(labels)
  assert report['accuracy'] == pytest.approx(
      np.trace(confusion) / len(labels))
  assert report['note_accuracy_same_instruments'] is not None
  assert (job_dir / 'eval' / 'phrases_phrases-test_metrics.json').exists()
  assert (job_dir / 'eval' / 'phrases_phrases-test_confusion.png').exists()


def test_report_files_agree_with_a_recomputation(trained_job, tiny_tfrecords):
  job_dir, reports = trained_job
  manifest = manifest_lib.read(str(tiny_tfrecords))
  model = models.load(job_layout.best_model_path(str(job_dir)))
  files = input_pipeline.split_files(str(tiny_tfrecords), manifest, 'valid')
  records = tf.data.TFRecordDataset(files, compression_type='GZIP').batch(999)
  parsed = schema.parse_batch(next(iter(records)), manifest.mfcc_shape)
  probabilities = model.predict(parsed[schema.MFCC], verbose=0)
  true_ids = parsed[schema.LABEL].numpy()
  predicted = probabilities.argmax(axis=1)
  with open(job_dir / 'eval' / 'valid_metrics.json') as f:
    saved = json.load(f)
  assert saved == reports['valid']
  assert saved['accuracy'] == pytest.approx(
      sklearn.metrics.accuracy_score(true_ids, predicted))
  np.testing.assert_array_equal(
      saved['confusion_matrix']['rows_true_columns_predicted'],
      sklearn.metrics.confusion_matrix(true_ids, predicted, labels=range(9)))
  precision, recall, f1, support = sklearn.metrics.precision_recall_fscore_support(
      true_ids, predicted, labels=range(9), zero_division=0)
  for i, family in enumerate(manifest.vocabulary.families):
    scores = saved['per_family'][family]
    assert scores['precision'] == pytest.approx(precision[i])
    assert scores['recall'] == pytest.approx(recall[i])
    assert scores['f1'] == pytest.approx(f1[i])
    assert scores['support'] == support[i]
  assert saved['loss'] == pytest.approx(sklearn.metrics.log_loss(
      true_ids, probabilities, labels=range(9)), rel=1e-3)
  assert saved['macro_f1'] == pytest.approx(sklearn.metrics.f1_score(
      true_ids, predicted, average='macro', zero_division=0))
  assert 'instrument-disjoint' in saved['split_statement']
  # Sliced accuracy, recomputed from the records' own source and pitch.
  sources = parsed[schema.SOURCE].numpy().astype(str)
  for source in set(sources):
    rows = sources == source
    assert saved['slices']['source'][source] == {
        'accuracy': pytest.approx((predicted[rows] == true_ids[rows]).mean()),
        'num_examples': int(rows.sum())}
  pitches = parsed[schema.PITCH].numpy()
  low = (pitches >= 60) & (pitches <= 71)
  if low.any():
    assert saved['slices']['pitch_range']['C4-B4 (60-71)'] == {
        'accuracy': pytest.approx((predicted[low] == true_ids[low]).mean()),
        'num_examples': int(low.sum())}
  assert sum(s['num_examples'] for s in saved['slices'][
      'pitch_range'].values()) == len(true_ids)
  for png in ('valid_confusion.png', 'test_confusion.png', 'curves.png',
              'valid_examples.png', 'test_examples.png', 'valid_slices.png',
              'test_slices.png'):
    assert (job_dir / 'eval' / png).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_the_report_reaches_tensorboard(trained_job):
  job_dir, reports = trained_job
  tags = set()
  for events in (job_dir / 'logs' / 'report').glob('events.out.tfevents.*'):
    for event in tf.compat.v1.train.summary_iterator(str(events)):
      tags |= {value.tag for value in event.summary.value}
  assert {'confusion/valid', 'confusion/test', 'report/valid_accuracy',
          '_hparams_/session_start_info'} <= tags


@pytest.mark.parametrize('true_ids,predicted', [
    ([0, 0, 1, 1, 2], [0, 1, 1, 1, 2]),
    ([0, 0, 1, 1], [0, 5, 1, 7]),        # families predicted but never true
    ([3, 3, 3], [3, 3, 3]),              # one family only
    ([0, 1, 2, 8], [8, 2, 1, 0]),        # all wrong
])
def test_every_metric_of_the_report_is_scikit_learns(true_ids, predicted):
  true_ids = np.array(true_ids)
  probabilities = np.full((len(true_ids), 9), 0.01)
  probabilities[np.arange(len(true_ids)), predicted] = 0.92
  families = [f'family{i}' for i in range(9)]
  report = metrics.classification_report(true_ids, probabilities, families)
  assert report['accuracy'] == pytest.approx(
      sklearn.metrics.accuracy_score(true_ids, predicted))
  assert report['macro_f1'] == pytest.approx(sklearn.metrics.f1_score(
      true_ids, predicted, average='macro', zero_division=0))
  assert report['loss'] == pytest.approx(sklearn.metrics.log_loss(
      true_ids, probabilities, labels=range(9)), rel=1e-6)
  precision, recall, f1, support = (
      sklearn.metrics.precision_recall_fscore_support(
          true_ids, predicted, labels=range(9), zero_division=0))
  for i, family in enumerate(families):
    assert report['per_family'][family] == pytest.approx({
        'precision': precision[i], 'recall': recall[i], 'f1': f1[i],
        'support': support[i]})
  np.testing.assert_array_equal(
      report['confusion_matrix']['rows_true_columns_predicted'],
      sklearn.metrics.confusion_matrix(true_ids, predicted, labels=range(9)))


def test_the_command_knows_every_model_without_importing_keras():
  assert model_names.MODEL_NAMES == tuple(sorted(recipes.MODELS))


def test_job_dir_holds_checkpoint_logs_history_and_report(trained_job):
  job_dir, _ = trained_job
  assert sorted(os.listdir(job_dir)) == [
      'checkpoints', 'eval', 'finished.json', 'history.csv', 'job_config.json',
      'logs']
  assert (job_dir / 'checkpoints' / 'best.keras').exists()
  assert list((job_dir / 'logs').rglob('events.out.tfevents.*'))
  history = job_layout.read_history(str(job_dir))
  assert [int(h['epoch']) for h in history] == list(range(8))
  assert not (job_dir / 'backup').exists() or not os.listdir(
      job_dir / 'backup')


def test_the_report_states_a_leaky_split_honestly(trained_job, tiny_tfrecords):
  manifest = manifest_lib.read(str(tiny_tfrecords))
  leaky = manifest_lib.Manifest(**{
      **manifest.__dict__,
      'split_method': dataclasses.replace(
          manifest.split_method, name='note', instrument_disjoint=False,
          instruments_in_several_splits=12)})
  statement = metrics.honest_split_statement(leaky, 'valid', 'train')
  assert statement.startswith('NOT instrument-disjoint')
  assert 'overstates' in statement


def run_task(*flags, timeout=300):
  return subprocess.run(
      [sys.executable, '-m', 'trainer.task', *flags], cwd=REPO,
      capture_output=True, text=True, timeout=timeout)


def test_a_killed_run_resumes_from_its_last_finished_epoch(tiny_tfrecords,
                                                          tmp_path):
  job_dir = tmp_path / 'job'
  command = [sys.executable, '-m', 'trainer.task',
             f'--data_dir={tiny_tfrecords}', f'--job_dir={job_dir}',
             '--model=seed_cnn', '--epochs=6', '--batch_size=16']
  history = job_dir / 'history.csv'
  process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
  deadline = time.time() + 240
  while time.time() < deadline:
    finished = (len(job_layout.read_history(str(job_dir)))
                if history.exists() else 0)
    if finished >= 2:
      break
    assert process.poll() is None, 'the run ended before it could be killed'
    time.sleep(0.2)
  process.send_signal(signal.SIGKILL)
  process.wait()
  done_before_kill = len(job_layout.read_history(str(job_dir)))
  assert 2 <= done_before_kill < 6
  assert os.listdir(job_dir / 'backup')

  resumed = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                           timeout=300)
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  # The second run trained only the epochs the first did not finish.
  output = resumed.stdout.splitlines() + resumed.stderr.splitlines()
  epoch_lines = [line for line in output if line.startswith('Epoch ')]
  assert epoch_lines, resumed.stdout[-2000:]
  first_resumed = int(epoch_lines[0].split()[1].split('/')[0])
  assert first_resumed > done_before_kill - 1
  assert [int(h['epoch']) for h in job_layout.read_history(str(job_dir))] == \
      list(range(6))


@pytest.mark.parametrize('flag,message', [
    ('--epochs=0', 'flag --epochs=0: 0 is not a positive integer'),
    ('--learning_rate=-1', 'flag --learning_rate=-1: -1.0 is not'),
    ('--model=transformer', 'flag --model=transformer: value should be one'),
    ('--distribution=tpu', 'flag --distribution=tpu: value should be one'),
    ('--eval_splits=valid,valid', '--eval_splits must not repeat a split'),
])
def test_bad_flags_end_the_command_in_one_line_naming_the_flag(
    flag, message, tiny_tfrecords, tmp_path):
  result = run_task(f'--data_dir={tiny_tfrecords}',
                    f'--job_dir={tmp_path / "job"}', flag)
  assert result.returncode == 1
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith('error: ')
  assert message in lines[0]
  assert not (tmp_path / 'job').exists()


@pytest.mark.slow
def test_the_command_reports_a_missing_data_dir_naming_it(tmp_path):
  result = run_task(f'--data_dir={tmp_path / "nowhere"}',
                    f'--job_dir={tmp_path / "job"}')
  assert result.returncode == 1
  assert result.stderr.strip().splitlines() == [
      f'error: {tmp_path / "nowhere"} does not exist: is it the --output_dir '
      f'of a finished nsynth-tfrecords run?']
  assert not (tmp_path / 'job').exists()


def test_a_deleted_dataset_version_is_named_with_the_way_to_the_newest(
    tmp_path):
  """A job records the version it read; a later --overwrite of the Beam job
  deletes it, and whoever reads the job's data then learns why and where
  the newest is."""
  deleted = tmp_path / 'tfrecords' / '20261205-101010-abcdef'
  with pytest.raises(manifest_lib.ManifestError) as error:
    dataset_versions.resolve_data_dir(str(deleted))
  assert str(error.value) == (
      f'{deleted} does not exist: the dataset version was deleted (a later '
      f'nsynth-tfrecords --overwrite replaces older versions); pass '
      f'--data_dir={tmp_path / "tfrecords"} for the newest')


def test_a_job_dir_that_is_a_file_is_one_line(tiny_tfrecords, tmp_path):
  a_file = tmp_path / 'job'
  a_file.write_text('not a directory')
  result = run_task(f'--data_dir={tiny_tfrecords}', f'--job_dir={a_file}')
  assert result.returncode == 1
  assert result.stderr.strip().splitlines() == [
      f'error: --job_dir {a_file} is a file, not a directory']


def test_a_malformed_manifest_is_one_line_naming_it(tfrecords_copy, tmp_path):
  (tfrecords_copy / 'manifest.json').write_text('{"format_version": 2, ')
  result = run_task(f'--data_dir={tfrecords_copy}',
                    f'--job_dir={tmp_path / "job"}')
  assert result.returncode == 1
  (line,) = result.stderr.strip().splitlines()
  assert line.startswith(f'error: {tfrecords_copy}/manifest.json is not a '
                         f'valid manifest')


def test_a_truncated_shard_is_named(tfrecords_copy, tmp_path):
  shard = sorted(tfrecords_copy.glob('valid-*'))[0]
  shard.write_bytes(shard.read_bytes()[:-300])
  for validate in (True, False):
    with pytest.raises(input_pipeline.DataError,
                       match=f'truncated or corrupted record in .*{shard.name}'):
      train.train(quick_config(tfrecords_copy, tmp_path / f'job{validate}',
                               epochs=1, validate_data=validate))


def test_a_second_trainer_on_the_same_job_dir_refuses(tiny_tfrecords,
                                                      tmp_path):
  job_dir = tmp_path / 'job'
  job_dir.mkdir()
  with directory_lock.DirectoryLock(str(job_dir)):  # The first trainer.
    with pytest.raises(job_layout.JobDirError,
                       match=f'{job_dir} is in use by another run.*pid '
                             f'{os.getpid()}'):
      train.train(quick_config(tiny_tfrecords, job_dir, epochs=1))
  assert os.listdir(job_dir) == []


def test_a_finished_job_is_not_silently_trained_again(tiny_tfrecords,
                                                      tmp_path):
  job_dir = tmp_path / 'job'
  config = quick_config(tiny_tfrecords, job_dir, model='timbre_tcn', epochs=2,
                        eval_splits=('valid',))
  train.train(config)
  (job_dir / 'my_notes.txt').write_text('mine')
  history = (job_dir / 'history.csv').read_text()
  with pytest.raises(job_layout.JobDirError,
                     match='holds a finished run.*pass --overwrite'):
    train.train(config)
  assert (job_dir / 'history.csv').read_text() == history
  train.train(dataclasses.replace(config, overwrite=True))
  epochs = [int(h['epoch']) for h in job_layout.read_history(str(job_dir))]
  assert epochs == [0, 1]  # From scratch: no duplicate epoch 0.
  assert (job_dir / 'history.csv').read_text().count('epoch') == 1
  assert (job_dir / 'my_notes.txt').read_text() == 'mine'


def test_resuming_with_other_settings_refuses_before_touching_anything(
    tiny_tfrecords, tmp_path):
  job_dir = tmp_path / 'job'
  config = quick_config(tiny_tfrecords, job_dir, model='timbre_tcn', epochs=1,
                        eval_splits=('valid',))
  train.train(config)
  (job_dir / 'finished.json').unlink()  # As if it had been interrupted.
  before = {p.name: p.read_bytes() for p in job_dir.iterdir() if p.is_file()}
  with pytest.raises(job_layout.JobDirError) as error:
    train.train(dataclasses.replace(config, model='seed_cnn',
                                    learning_rate=0.01))
  message = str(error.value)
  assert "--model: 'timbre_tcn' in the run being resumed, 'seed_cnn' now" in \
      message
  assert '--learning_rate: 0.001' in message
  assert {p.name: p.read_bytes() for p in job_dir.iterdir()
          if p.is_file()} == before


def _add_a_shard_with_label_42(data_dir):
  """A valid shard the manifest lists, whose one record has label id 42."""
  bad_shard = data_dir / 'valid-00009-of-00009.tfrecord.gz'
  manifest = manifest_lib.read(str(data_dir))
  with tf.io.TFRecordWriter(str(bad_shard), 'GZIP') as writer:
    writer.write(schema.serialize_note(schema.NoteExample(
        np.zeros(manifest.mfcc_shape, np.float32), 42, 'bass', 'acoustic',
        'b', 40, 100, 'b-040-100', representations={
            key: np.zeros(size, np.float32)
            for key, size in manifest.representation_sizes.items()})))
  def one_more(data):
    data['splits']['valid']['num_examples'] += 1
    data['files'].append(bad_shard.name)
  _rewrite_manifest(data_dir, one_more)


def test_a_label_outside_the_vocabulary_stops_evaluation_naming_the_file(
    tfrecords_copy, tmp_path):
  _add_a_shard_with_label_42(tfrecords_copy)
  manifest = manifest_lib.read(str(tfrecords_copy))
  model = recipes.build('timbre_tcn', manifest)
  with pytest.raises(input_pipeline.DataError,
                     match=r'outside the vocabulary.*valid-00009-of-00009'):
    report_lib.evaluate_split(model, str(tfrecords_copy), manifest, 'valid')
  with pytest.raises(input_pipeline.DataError,
                     match=r'outside the vocabulary.*valid-00009-of-00009'):
    train.train(quick_config(tfrecords_copy, tmp_path / 'job', epochs=1,
                             validate_data=False))


def _rewrite_manifest(data_dir, change):
  path = data_dir / 'manifest.json'
  data = json.loads(path.read_text())
  change(data)
  path.write_text(json.dumps(data))


def test_an_empty_split_stops_before_training_naming_it(tfrecords_copy,
                                                        tmp_path):
  def empty_test(data):
    data['splits']['test']['num_examples'] = 0
  _rewrite_manifest(tfrecords_copy, empty_test)
  with pytest.raises(input_pipeline.DataError, match="Split 'test'.*no "
                     'examples'):
    train.train(quick_config(tfrecords_copy, tmp_path / 'job'))


def test_shards_of_another_shape_stop_before_training_naming_the_file(
    tfrecords_copy, tmp_path):
  def thirteen_coefficients(data):
    data['feature_params']['num_mfcc'] = 13
    data['mfcc_shape'] = [126, 13]
  _rewrite_manifest(tfrecords_copy, thirteen_coefficients)
  with pytest.raises(input_pipeline.DataError,
                     match=r'train-00000-of-00002\.tfrecord\.gz'):
    train.train(quick_config(tfrecords_copy, tmp_path / 'job'))
  assert not (tmp_path / 'job').exists()


def test_a_label_outside_the_vocabulary_stops_naming_the_file(tfrecords_copy,
                                                             tmp_path):
  _add_a_shard_with_label_42(tfrecords_copy)
  with pytest.raises(input_pipeline.DataError,
                     match=r'valid-00009-of-00009.*label id 42 is outside'):
    train.train(quick_config(tfrecords_copy, tmp_path / 'job'))


def test_unknown_split_is_named(tiny_tfrecords, tmp_path):
  with pytest.raises(input_pipeline.DataError, match="'holdout' is not in"):
    train.train(quick_config(tiny_tfrecords, tmp_path / 'job',
                             eval_splits=('holdout',)))


def test_evaluate_command_writes_the_report(trained_job):
  job_dir, reports = trained_job
  result = subprocess.run(
      [sys.executable, '-m', 'trainer.evaluate', f'--job_dir={job_dir}',
       '--split=test'], cwd=REPO, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert f'accuracy {reports["test"]["accuracy"]:.3f}' in result.stdout
  assert 'instrument-disjoint' in result.stdout


def test_mirrored_strategy_trains_and_reports(tiny_tfrecords, tmp_path):
  reports = train.train(quick_config(
      tiny_tfrecords, tmp_path / 'job', model='timbre_tcn', epochs=1,
      distribution='mirrored', eval_splits=('valid',)))
  assert set(reports) == {'train', 'valid'}


def test_multi_worker_without_tf_config_is_refused(monkeypatch):
  monkeypatch.delenv('TF_CONFIG', raising=False)
  with pytest.raises(ValueError, match='TF_CONFIG'):
    cluster.distribution_strategy('multi_worker')


def _free_ports(count):
  sockets = [socket.socket() for _ in range(count)]
  for s in sockets:
    s.bind(('127.0.0.1', 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def test_two_workers_train_together_and_only_the_chief_writes(tiny_tfrecords,
                                                              tmp_path):
  """Two real worker processes on localhost, as a cluster runs them."""
  job_dir = tmp_path / 'job'
  scratch = tmp_path / 'tmp'
  scratch.mkdir()
  addresses = {'worker': [f'127.0.0.1:{p}' for p in _free_ports(2)]}
  workers = []
  for index in range(2):
    tf_config = {'cluster': addresses, 'task': {'type': 'worker',
                                              'index': index}}
    workers.append(subprocess.Popen(
        [sys.executable, '-m', 'trainer.task', f'--data_dir={tiny_tfrecords}',
         f'--job_dir={job_dir}', '--model=timbre_tcn', '--epochs=1',
         '--batch_size=16', '--eval_splits=valid',
         '--distribution=multi_worker', '--verbosity=0'],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, 'TF_CONFIG': json.dumps(tf_config),
             'TMPDIR': str(scratch)}))
  logs = []
  for worker in workers:
    _, stderr = worker.communicate(timeout=400)
    assert worker.returncode == 0, stderr[-3000:]
    logs.append(stderr)
  # Both took part, each in step with the other.
  fingerprints = {}
  for log in logs:
    assert 'Input sharding: DATA over 2 workers' in log
    (index, fingerprint), = re.findall(
        r'Worker (\d) of 2(?: \(chief\))? finished; weights fingerprint '
        r'(\w+)', log)
    fingerprints[int(index)] = fingerprint
  assert set(fingerprints) == {0, 1}
  assert fingerprints[0] == fingerprints[1]
  # Exactly one set of outputs, written by the chief; no scratch left over.
  assert sorted(os.listdir(job_dir)) == [
      'checkpoints', 'eval', 'finished.json', 'history.csv', 'job_config.json',
      'logs']
  assert [int(h['epoch']) for h in job_layout.read_history(str(job_dir))] == [0]
  assert (job_dir / 'history.csv').read_text().count('epoch') == 1
  assert not [p for p in os.listdir(scratch) if p.startswith('nsynth-worker')]
  # The model the chief saved is the model both workers ended with.
  saved = models.load(job_layout.best_model_path(str(job_dir)))
  assert cluster.weights_fingerprint(saved) == fingerprints[0]


def test_the_same_seed_repeats_a_run_exactly(tiny_tfrecords, tmp_path):
  histories = []
  for run_name in ('first', 'second'):
    job_dir = tmp_path / run_name
    train.train(quick_config(tiny_tfrecords, job_dir, model='timbre_tcn',
                             epochs=2, eval_splits=('valid',)))
    histories.append((job_dir / 'history.csv').read_text())
  assert histories[0] == histories[1]


@pytest.mark.slow
def test_the_blogs_recipe_can_leave_the_augmented_copies_out(tiny_demo,
                                                             tmp_path):
  from beam_pipelines import nsynth_tfrecords
  data = tmp_path / 'data'
  job = nsynth_tfrecords.run([
      f'--input={tiny_demo / "nsynth-train"},{tiny_demo / "nsynth-valid"}',
      f'--output_dir={data}', '--augment_copies=2', '--num_mfcc=20'])
  data = job.dataset_dir
  summary = job.manifest.splits['train']
  manifest = manifest_lib.read(str(data))
  files = input_pipeline.split_files(str(data), manifest, 'train')
  originals = summary.num_examples - summary.num_augmented
  for only, expected in ((True, originals), (False, summary.num_examples)):
    dataset = input_pipeline.make_dataset(files, manifest, 32,
                                          originals_only=only,
                                          num_examples=expected)
    assert sum(len(x) for x, _ in dataset) == expected
  assert summary.num_augmented == 2 * originals
  reports = train.train(quick_config(data, tmp_path / 'job', epochs=1,
                                     eval_splits=('valid',),
                                     train_on_augmented=False))
  assert reports['train']['num_examples'] == summary.num_examples


def test_the_job_remembers_its_data_wherever_it_is_run_from(tiny_tfrecords,
                                                            tmp_path,
                                                            monkeypatch):
  monkeypatch.chdir(tiny_tfrecords.parent)
  job_dir = tmp_path / 'job'
  train.train(quick_config(tiny_tfrecords.name, job_dir, epochs=1,
                           eval_splits=('valid',)))
  config = job_layout.read_job_config(str(job_dir))
  assert config['data_dir'] == str(tiny_tfrecords)
  # A damaged finished.json still means a finished run, not a traceback.
  (job_dir / 'finished.json').write_text('[1]')
  with pytest.raises(job_layout.JobDirError, match='holds a finished run'):
    train.train(quick_config(tiny_tfrecords.name, job_dir, epochs=1,
                             eval_splits=('valid',)))


def test_data_without_training_statistics_is_refused_before_any_write(
    tfrecords_copy, tmp_path):
  def no_statistics(data):
    data['normalization'] = None
  _rewrite_manifest(tfrecords_copy, no_statistics)
  with pytest.raises(input_pipeline.DataError, match='no normalization'):
    train.train(quick_config(tfrecords_copy, tmp_path / 'job', epochs=1))
  assert not (tmp_path / 'job').exists()


@pytest.fixture
def small_disk(tmp_path):
  """A 256 KiB file system of its own (tmpfs; mounting needs root)."""
  mount_point = tmp_path / 'small_disk'
  mount_point.mkdir()
  mounted = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=256k',
                            'tmpfs', str(mount_point)], capture_output=True)
  if mounted.returncode != 0:
    pytest.skip('mounting a small tmpfs needs root')
  yield mount_point
  subprocess.run(['umount', str(mount_point)], check=True)


def test_a_disk_that_fills_during_training_is_one_line(tiny_tfrecords,
                                                       small_disk):
  """The job directory's disk fills while the first epoch's checkpoints are
  written: one line naming the file, status 1, no traceback and no crash of
  the interpreter's exit (h5py's half-written weights)."""
  result = run_task(f'--data_dir={tiny_tfrecords}',
                    f'--job_dir={small_disk / "job"}', '--model=stats_mlp',
                    '--epochs=2')
  assert result.returncode == 1, result.stderr[-2000:]
  last_line = result.stderr.splitlines()[-1]
  assert last_line.startswith(
      f'error: the disk is full (no space left on device) while writing '
      f'{small_disk / "job"}/')
  assert 'Traceback' not in result.stderr
  assert 'Exception ignored' not in result.stderr
