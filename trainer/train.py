"""Training: input pipelines, a model, callbacks, fit, then the report.

`train(TrainConfig)` is the library entry; trainer.task is its command.

A job directory holds one run (trainer.job_layout). Before anything is
written the run decides what the directory allows: a fresh start, resuming
an interrupted run with the same settings, or nothing (a finished run, or
other settings), unless `overwrite` asks to start again. The directory is
locked for the whole run.

With --distribution=multi_worker every worker trains, but only the chief
writes the job directory, as tf.distribute prescribes: the other workers
write their checkpoints and logs to scratch directories of their own, which
they delete at the end.
"""

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf

from nsynth_contracts import directory_lock
from nsynth_contracts import manifest as manifest_lib
from trainer import evaluate
from trainer import fit_callbacks
from trainer import input_pipeline
from trainer import job_layout
from trainer import keras_multi_worker
from trainer import models

MONITOR = fit_callbacks.MONITOR
# Settings that do not change what a run computes: a resumed run may differ
# from the interrupted one in these, and only in these.
_FREE_ON_RESUME = ('job_dir', 'overwrite', 'validate_data', 'cache')


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """One training run; the trainer's flags take their defaults from here."""
  data_dir: str
  job_dir: str
  model: str = 'timbre_ensemble'
  epochs: int = 30
  batch_size: int = 64
  learning_rate: float = 1e-3
  seed: int = 42
  # Epochs without a better validation accuracy before stopping (0: off).
  # On instrument-disjoint validation the ensemble peaks by epoch 10-25 and
  # then only wanders; the best checkpoint is kept either way.
  early_stopping_patience: int = 10
  train_split: str = 'train'
  eval_splits: tuple[str, ...] = ('valid', 'test')
  distribution: str = 'default'          # default | mirrored | multi_worker
  cache: bool = True
  shuffle_buffer: int = 10_000
  validate_data: bool = True
  train_on_augmented: bool = True        # use the data's augmented copies
  overwrite: bool = False                # start a finished run again


DISTRIBUTIONS = ('default', 'mirrored', 'multi_worker')


class ConfigError(ValueError):
  """The run's settings cannot work here; the message names the setting."""


def best_model_path(job_dir: str) -> str:
  return job_layout.best_model_path(job_dir)


def read_job_config(job_dir: str) -> dict:
  return job_layout.read_job_config(job_dir)


def distribution_strategy(name: str) -> tf.distribute.Strategy:
  """The tf.distribute strategy for --distribution.

  multi_worker reads the cluster from the standard TF_CONFIG variable.
  """
  if name == 'default':
    return tf.distribute.get_strategy()
  if name == 'mirrored':
    return tf.distribute.MirroredStrategy()
  if name == 'multi_worker':
    if 'TF_CONFIG' not in os.environ:
      raise ConfigError('--distribution=multi_worker needs TF_CONFIG to '
                        'describe the cluster')
    return tf.distribute.MultiWorkerMirroredStrategy()
  raise ConfigError(f'Unknown --distribution {name!r}')


@dataclasses.dataclass(frozen=True)
class Worker:
  """This process's place in the cluster."""
  index: int = 0
  count: int = 1
  is_chief: bool = True


def worker_of(strategy: tf.distribute.Strategy) -> Worker:
  """Chief: the 'chief' task, or worker 0 of a cluster without one."""
  resolver = getattr(strategy, 'cluster_resolver', None)
  if resolver is None or not resolver.cluster_spec().as_dict():
    return Worker()
  jobs = resolver.cluster_spec().as_dict()
  count = sum(len(jobs.get(job, [])) for job in ('chief', 'worker'))
  task_type, task_id = resolver.task_type, resolver.task_id or 0
  is_chief = task_type == 'chief' or (task_type == 'worker' and task_id == 0
                                      and 'chief' not in jobs)
  index = task_id + (1 if 'chief' in jobs and task_type == 'worker' else 0)
  return Worker(index=index, count=count, is_chief=is_chief)


def _settings(config: TrainConfig) -> dict:
  """The config as JSON would hold it (tuples become lists), with a local
  data_dir made absolute: the report and the export read it from anywhere."""
  settings = json.loads(json.dumps(dataclasses.asdict(config)))
  if not directory_lock.is_remote(config.data_dir):
    settings['data_dir'] = os.path.abspath(config.data_dir)
  return settings


def _finished_message(job_dir: str, finished: dict) -> str:
  best = finished.get('best_' + MONITOR)
  what = (f'{finished.get("epochs_trained")} epochs' +
          (f', best {MONITOR} {best:.3f}' if isinstance(best, float) else ''))
  return (f'--job_dir {job_dir} holds a finished run ({what}); pass '
          f'--overwrite to train it again from scratch, or choose another '
          f'--job_dir')


def check_job_dir(config: TrainConfig) -> str:
  """What the job directory allows this run: 'fresh', 'resume' or
  'overwrite'. Reads only: nothing is written here.

  Raises:
    job_layout.JobDirError: the directory is a file, holds a finished run,
      or a run with other settings (each difference named).
  """
  job_dir = config.job_dir
  if tf.io.gfile.exists(job_dir) and not tf.io.gfile.isdir(job_dir):
    raise job_layout.JobDirError(f'--job_dir {job_dir} is a file, not a '
                                 f'directory')
  present = [name for name in job_layout.TRAINER_OUTPUTS
             if tf.io.gfile.exists(job_layout.path(job_dir, name))]
  if not present:
    return 'fresh'
  if config.overwrite:
    return 'overwrite'
  finished = job_layout.read_finished(job_dir)
  if finished is not None:
    raise job_layout.JobDirError(_finished_message(job_dir, finished))
  if job_layout.JOB_CONFIG not in present:
    raise job_layout.JobDirError(
        f'--job_dir {job_dir} holds {present[0]} of a trainer run but no '
        f'{job_layout.JOB_CONFIG} to resume it with; pass --overwrite to '
        f'start again, or choose another --job_dir')
  before = job_layout.read_job_config(job_dir)
  now = _settings(config)
  differences = [f'--{key}: {before.get(key)!r} in the run being resumed, '
                 f'{now[key]!r} now' for key in now
                 if key not in _FREE_ON_RESUME and before.get(key) != now[key]]
  if differences:
    raise job_layout.JobDirError(
        f'--job_dir {job_dir} holds an unfinished run with other settings ('
        + '; '.join(differences) + '). Resume it with its own settings, pass '
        '--overwrite to start again with these, or choose another --job_dir')
  return 'resume'


def _remove_trainer_outputs(job_dir: str) -> None:
  """What an earlier run of the trainer wrote, and nothing else."""
  for name in job_layout.TRAINER_OUTPUTS:
    target = job_layout.path(job_dir, name)
    if tf.io.gfile.isdir(target):
      tf.io.gfile.rmtree(target)
    elif tf.io.gfile.exists(target):
      tf.io.gfile.remove(target)


def _copy_tree(source: str, destination: str) -> None:
  for directory, _, names in tf.io.gfile.walk(source):
    target = job_layout.path(destination, os.path.relpath(directory, source))
    tf.io.gfile.makedirs(target)
    for name in names:
      tf.io.gfile.copy(job_layout.path(directory, name),
                       job_layout.path(target, name), overwrite=True)


def load_data(config: TrainConfig):
  """The manifest and each split's shards, validated before any training."""
  manifest = manifest_lib.read(config.data_dir)
  where = manifest_lib.manifest_path(config.data_dir)
  if manifest.normalization is None:
    raise input_pipeline.DataError(
        f'{where} has no normalization statistics (its data had no train '
        f'split): train on data with one')
  files = {}
  for split in (config.train_split,) + tuple(config.eval_splits):
    files[split] = input_pipeline.split_files(config.data_dir, manifest,
                                              split)
    if config.validate_data:
      count = input_pipeline.validate_split(files[split], manifest, split)
      logging.info('Split %s: %d examples in %d shards, checked against the '
                   'manifest', split, count, len(files[split]))
  # After the shards, which name the odd one out when they disagree.
  coefficients = manifest.mfcc_shape[1]
  for name, values in (('mean', manifest.normalization.mean),
                       ('std', manifest.normalization.std)):
    if len(values) != coefficients:
      raise input_pipeline.DataError(
          f'{where}: its normalization {name} has {len(values)} '
          f'coefficients, its mfcc_shape {list(manifest.mfcc_shape)} '
          f'{coefficients}')
  return manifest, files


def _input_options(worker: Worker) -> tf.data.Options:
  """Sharding chosen on purpose: every worker reads every shard and keeps
  its share of each global batch (DATA). It works for any number of shards,
  and every worker gets the same number of steps; FILE sharding needs at
  least one shard per worker and gives uneven steps when shards differ."""
  options = tf.data.Options()
  options.experimental_distribute.auto_shard_policy = (
      tf.data.experimental.AutoShardPolicy.DATA)
  if worker.count > 1:
    logging.info('Input sharding: DATA over %d workers (each reads every '
                 'shard and keeps its share of each batch)', worker.count)
  return options


def weights_fingerprint(model: keras.Model) -> str:
  """A short digest of every weight: equal models, equal fingerprints."""
  digest = hashlib.sha256()
  for weight in model.weights:
    digest.update(np.asarray(weight.numpy()).tobytes())
  return digest.hexdigest()[:16]


def _fit(config: TrainConfig, strategy, worker: Worker, manifest, files,
         write_dir: str) -> keras.Model:
  global_batch = config.batch_size * strategy.num_replicas_in_sync
  options = _input_options(worker)
  summary = manifest.splits[config.train_split]
  train_data = input_pipeline.make_dataset(
      files[config.train_split], manifest, global_batch, shuffle=True,
      seed=config.seed, shuffle_buffer=config.shuffle_buffer,
      cache=config.cache,
      num_examples=(summary.num_examples if config.train_on_augmented
                    else summary.num_examples - summary.num_augmented),
      originals_only=not config.train_on_augmented).with_options(options)
  validation_data = None
  if config.eval_splits:
    validation_data = input_pipeline.make_dataset(
        files[config.eval_splits[0]], manifest, global_batch,
        cache=config.cache,
        num_examples=manifest.splits[config.eval_splits[0]].num_examples
    ).with_options(options)
  with strategy.scope():
    model = models.build(config.model, manifest)
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss=keras.losses.CategoricalCrossentropy(),
        metrics=['accuracy'])
  keras_multi_worker.enable(model, strategy)
  try:
    # shuffle=False: the dataset shuffles itself, seeded (Keras would only
    # warn that it ignores its own shuffle for a tf.data input).
    model.fit(train_data, validation_data=validation_data, shuffle=False,
              epochs=config.epochs, verbose=2 if worker.is_chief else 0,
              callbacks=fit_callbacks.callbacks(
                  config.job_dir, write_dir, config.early_stopping_patience))
  except (tf.errors.InvalidArgumentError, tf.errors.DataLossError,
          tf.errors.FailedPreconditionError) as e:
    # FailedPrecondition: fewer or more batches than the manifest's counts.
    all_files = [f for split_files in files.values() for f in split_files]
    raise input_pipeline.data_error(e, all_files, manifest) from None
  except fit_callbacks.NonFiniteLossError as e:
    raise _non_finite_cause(e, config, files[config.train_split],
                            manifest) from None
  return model


def _non_finite_cause(error: fit_callbacks.NonFiniteLossError,
                      config: TrainConfig, train_files: list[str],
                      manifest) -> ValueError:
  """The error that says why training went non-finite: the record that
  poisoned it when the data was not validated, else the step size."""
  kept = 'Nothing of that epoch was kept'
  if not config.validate_data:
    problem = input_pipeline.find_problem(train_files, manifest)
    if problem:
      return input_pipeline.DataError(f'{error} {kept}; the data is at '
                                      f'fault: {problem}')
  checked = ('The data was checked finite' if config.validate_data else
             'No record of the training split is NaN or Inf')
  return fit_callbacks.NonFiniteLossError(
      f'{error} {kept}. {checked}, so --learning_rate '
      f'{config.learning_rate:g} is likely too high for --model '
      f'{config.model}: train again with a lower one and --overwrite')


def train(config: TrainConfig) -> dict[str, dict]:
  """Trains, keeps the best model and evaluates it.

  Returns:
    The evaluation report per split (empty on workers other than the chief).

  Raises:
    job_layout.JobDirError, input_pipeline.DataError,
    manifest_lib.ManifestError: before any training, naming the path.
  """
  keras.utils.set_random_seed(config.seed)
  # Before any TF op: multi-worker collectives can only be set up at start.
  strategy = distribution_strategy(config.distribution)
  worker = worker_of(strategy)
  if not worker.is_chief:
    return _train_as_worker(config, strategy, worker)
  job_layout.refuse_if_in_use(config.job_dir)
  check_job_dir(config)  # Refuse early; checked again under the lock.
  manifest, files = load_data(config)
  if directory_lock.is_remote(config.job_dir):
    tf.io.gfile.makedirs(config.job_dir)
  with directory_lock.claimed(config.job_dir, '--job_dir',
                              job_layout.JobDirError):
    return _train_as_chief(config, strategy, worker, manifest, files)


def _train_as_chief(config: TrainConfig, strategy, worker: Worker, manifest,
                    files) -> dict[str, dict]:
  state = check_job_dir(config)
  if state == 'overwrite':
    logging.warning('Replacing the earlier run in %s', config.job_dir)
    _remove_trainer_outputs(config.job_dir)
  tf.io.gfile.makedirs(config.job_dir)
  job_layout.write_json(job_layout.path(config.job_dir, job_layout.JOB_CONFIG),
                        _settings(config))
  model = _fit(config, strategy, worker, manifest, files, config.job_dir)
  if not tf.io.gfile.exists(best_model_path(config.job_dir)):
    # No validation split; the guard saw these weights finite.
    fit_callbacks.save_model(model, best_model_path(config.job_dir))
  history = evaluate.read_history(config.job_dir)
  scores = [row[MONITOR] for row in history if MONITOR in row]
  job_layout.write_json(job_layout.path(config.job_dir, job_layout.FINISHED), {
      'epochs_trained': len(history),
      f'best_{MONITOR}': max(scores) if scores else None,
  })
  if worker.count > 1:
    logging.info('Worker %d of %d (chief) finished; weights fingerprint %s',
                 worker.index, worker.count, weights_fingerprint(model))
  try:
    return evaluate.evaluate_job(
        config.job_dir, (config.train_split,) + tuple(config.eval_splits))
  except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as e:
    all_files = [f for split_files in files.values() for f in split_files]
    raise input_pipeline.data_error(e, all_files, manifest) from None


def _train_as_worker(config: TrainConfig, strategy,
                     worker: Worker) -> dict[str, dict]:
  """Trains in step with the chief; writes only to its own scratch dir."""
  check_job_dir(config)
  manifest, files = load_data(config)
  scratch = tempfile.mkdtemp(prefix=f'nsynth-worker{worker.index}-')
  try:
    backup = job_layout.path(config.job_dir, job_layout.BACKUP_DIR)
    if tf.io.gfile.isdir(backup):  # Resume from the epoch the chief resumes.
      _copy_tree(backup, job_layout.path(scratch, job_layout.BACKUP_DIR))
    model = _fit(config, strategy, worker, manifest, files, scratch)
    logging.info('Worker %d of %d finished; weights fingerprint %s',
                 worker.index, worker.count, weights_fingerprint(model))
  finally:
    shutil.rmtree(scratch, ignore_errors=True)
  return {}
