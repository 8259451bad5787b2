"""The trainer: input pipeline, models, training, resume, report, errors."""

import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import sklearn.metrics
import tensorflow as tf

from nsynth_contracts import manifest as manifest_lib
from nsynth_contracts import schema
from trainer import evaluate
from trainer import input_pipeline
from trainer import models
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
      files, manifest, 32, shuffle=True, seed=3, cache=True,
      num_examples=manifest.splits['train'].num_examples)
  assert dataset.element_spec[0].shape.as_list() == [None, 126, 20]
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


def test_seed_cnn_is_the_blogs_network(tiny_tfrecords):
  manifest = manifest_lib.read(str(tiny_tfrecords))
  model = models.build('seed_cnn', manifest)
  kinds = [(type(layer).__name__, getattr(layer, 'filters', None) or
            getattr(layer, 'units', None) or getattr(layer, 'rate', None))
           for layer in model.layers]
  assert kinds == [
      ('InputLayer', None), ('Normalization', None), ('Reshape', None),
      ('Conv2D', 52), ('Conv2D', 64), ('Conv2D', 132),
      ('MaxPooling2D', None), ('Dropout', 0.25), ('Flatten', None),
      ('Dense', 100), ('Dropout', 0.25), ('Dense', 64), ('Dropout', 0.25),
      ('Dense', 9)]
  conv = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
  assert all(l.kernel_size == (2, 2) for l in conv)
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
  x = np.random.default_rng(0).normal(mean, std, (4, 126, 20)).astype(
      np.float32)
  np.testing.assert_allclose(layer(x).numpy(), (x - mean) / std, atol=1e-4)


@pytest.fixture(scope='module')
def trained_job(tiny_tfrecords, tmp_path_factory):
  job_dir = tmp_path_factory.mktemp('job')
  reports, export_dir = train.train(quick_config(tiny_tfrecords, job_dir,
                                                 epochs=8))
  return job_dir, reports, export_dir


def test_short_training_beats_chance_clearly(trained_job):
  _, reports, _ = trained_job
  chance = 1 / 9
  assert reports['train']['accuracy'] > 3 * chance
  assert reports['valid']['accuracy'] > chance


def test_report_files_agree_with_a_recomputation(trained_job, tiny_tfrecords):
  job_dir, reports, _ = trained_job
  manifest = manifest_lib.read(str(tiny_tfrecords))
  model = keras.models.load_model(train.best_model_path(str(job_dir)))
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
  assert 'instrument-disjoint' in saved['split_statement']
  for png in ('valid_confusion.png', 'test_confusion.png', 'curves.png',
              'valid_examples.png', 'test_examples.png'):
    assert (job_dir / 'eval' / png).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_job_dir_holds_checkpoint_logs_history_and_export(trained_job):
  job_dir, _, export_dir = trained_job
  assert export_dir == str(job_dir / 'export' / 'nsynth_instrument' / '1')
  assert os.path.exists(os.path.join(export_dir, 'saved_model.pb'))
  assert (job_dir / 'checkpoints' / 'best.keras').exists()
  assert list((job_dir / 'logs').rglob('events.out.tfevents.*'))
  history = evaluate.read_history(str(job_dir))
  assert [int(h['epoch']) for h in history] == list(range(8))
  assert not (job_dir / 'backup').exists() or not os.listdir(
      job_dir / 'backup')


def test_the_report_states_a_leaky_split_honestly(trained_job, tiny_tfrecords):
  manifest = manifest_lib.read(str(tiny_tfrecords))
  leaky = manifest_lib.Manifest(**{
      **manifest.__dict__,
      'split_method': {'name': 'note', 'instrument_disjoint': False,
                       'instruments_in_several_splits': 12}})
  statement = evaluate.honest_split_statement(leaky, 'valid', 'train')
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
    finished = (len(evaluate.read_history(str(job_dir)))
                if history.exists() else 0)
    if finished >= 2:
      break
    assert process.poll() is None, 'the run ended before it could be killed'
    time.sleep(0.2)
  process.send_signal(signal.SIGKILL)
  process.wait()
  done_before_kill = len(evaluate.read_history(str(job_dir)))
  assert 2 <= done_before_kill < 6
  assert os.listdir(job_dir / 'backup')

  resumed = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                           timeout=300)
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  # The second run trained only the epochs the first did not finish.
  epoch_lines = [l for l in resumed.stdout.splitlines() + resumed.stderr
                 .splitlines() if l.startswith('Epoch ')]
  assert epoch_lines, resumed.stdout[-2000:]
  first_resumed = int(epoch_lines[0].split()[1].split('/')[0])
  assert first_resumed > done_before_kill - 1
  assert [int(h['epoch']) for h in evaluate.read_history(str(job_dir))] == \
      list(range(6))


@pytest.mark.parametrize('flag,message', [
    ('--epochs=0', 'epochs'),
    ('--learning_rate=-1', 'learning_rate'),
    ('--model=transformer', 'model'),
    ('--distribution=tpu', 'distribution'),
    ('--eval_splits=valid,valid', 'eval_splits'),
])
def test_bad_flags_fail_before_any_work_naming_the_flag(flag, message,
                                                        tmp_path):
  from absl import flags
  from trainer import task  # pylint: disable=unused-import
  argv = ['task', f'--data_dir={tmp_path}', f'--job_dir={tmp_path / "job"}',
          flag]
  with pytest.raises(flags.Error, match=message):
    flags.FLAGS(argv)
  flags.FLAGS.unparse_flags()
  assert not (tmp_path / 'job').exists()


def test_the_command_reports_a_missing_data_dir_naming_it(tmp_path):
  result = run_task(f'--data_dir={tmp_path / "nowhere"}',
                    f'--job_dir={tmp_path / "job"}')
  assert result.returncode != 0
  assert f'{tmp_path / "nowhere"}/manifest.json does not exist' in result.stderr
  assert not (tmp_path / 'job').exists()


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
  bad_shard = tfrecords_copy / 'valid-00009-of-00009.tfrecord.gz'
  with tf.io.TFRecordWriter(str(bad_shard), 'GZIP') as writer:
    writer.write(schema.serialize_note(schema.NoteExample(
        np.zeros((126, 20), np.float32), 42, 'bass', 'acoustic', 'b', 40, 100,
        'b-040-100')))
  def one_more(data):
    data['splits']['valid']['num_examples'] += 1
  _rewrite_manifest(tfrecords_copy, one_more)
  with pytest.raises(input_pipeline.DataError,
                     match=r'valid-00009-of-00009.*label id 42 is outside'):
    train.train(quick_config(tfrecords_copy, tmp_path / 'job'))


def test_unknown_split_is_named(tiny_tfrecords, tmp_path):
  with pytest.raises(input_pipeline.DataError, match="'holdout' is not in"):
    train.train(quick_config(tiny_tfrecords, tmp_path / 'job',
                             eval_splits=('holdout',)))


def test_evaluate_command_writes_the_report(trained_job):
  job_dir, reports, _ = trained_job
  result = subprocess.run(
      [sys.executable, '-m', 'trainer.evaluate', f'--job_dir={job_dir}',
       '--split=test'], cwd=REPO, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert f'accuracy {reports["test"]["accuracy"]:.3f}' in result.stdout
  assert 'instrument-disjoint' in result.stdout


def test_mirrored_strategy_trains_and_reports(tiny_tfrecords, tmp_path):
  reports, _ = train.train(quick_config(
      tiny_tfrecords, tmp_path / 'job', model='timbre_tcn', epochs=1,
      distribution='mirrored', eval_splits=('valid',)))
  assert set(reports) == {'train', 'valid'}


def test_multi_worker_without_tf_config_is_refused(monkeypatch):
  monkeypatch.delenv('TF_CONFIG', raising=False)
  with pytest.raises(ValueError, match='TF_CONFIG'):
    train.distribution_strategy('multi_worker')


def test_multi_worker_reads_tf_config(tiny_tfrecords, tmp_path):
  import socket
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
  tf_config = {'cluster': {'worker': [f'127.0.0.1:{port}']},
               'task': {'type': 'worker', 'index': 0}}
  result = subprocess.run(
      [sys.executable, '-m', 'trainer.task', f'--data_dir={tiny_tfrecords}',
       f'--job_dir={tmp_path / "job"}', '--model=timbre_tcn', '--epochs=1',
       '--eval_splits=valid', '--distribution=multi_worker'],
      cwd=REPO, capture_output=True, text=True, timeout=300,
      env={**os.environ, 'TF_CONFIG': json.dumps(tf_config)})
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'MultiWorkerMirroredStrategy' in result.stderr
  assert (tmp_path / 'job' / 'eval' / 'valid_metrics.json').exists()


def test_the_same_seed_repeats_a_run_exactly(tiny_tfrecords, tmp_path):
  histories = []
  for run_name in ('first', 'second'):
    job_dir = tmp_path / run_name
    train.train(quick_config(tiny_tfrecords, job_dir, model='timbre_tcn',
                             epochs=2, eval_splits=('valid',)))
    histories.append((job_dir / 'history.csv').read_text())
  assert histories[0] == histories[1]
