"""Training: input pipelines, a model, callbacks, fit, then the report.

`train(TrainConfig)` is the library entry; trainer.task is its command.

Before anything is written the run decides what the job directory allows
(trainer.resume), and the directory is locked for the whole run. With
--distribution=multi_worker every worker trains, but only the chief writes
the job directory (trainer.cluster).
"""

import dataclasses
import logging
import posixpath
import shutil
import tempfile
from collections.abc import Callable

import keras
import tensorflow as tf

from nsynth_common import directory_lock
from nsynth_contracts import dataset_versions
from nsynth_contracts import manifest as manifest_lib
from trainer import cache_policy
from trainer import cluster
from trainer import data_checks
from trainer import fit_callbacks
from trainer import fit_progress
from trainer import input_pipeline
from trainer import job_layout
from trainer import keras_multi_worker
from trainer import layers
from trainer import recipes
from trainer import report
from trainer import resume
from trainer.train_config import ConfigError
from trainer.train_config import TrainConfig

MONITOR = fit_callbacks.MONITOR
# What reading records raises when they disagree with the manifest:
# FailedPrecondition is fewer or more batches than the manifest's counts.
_DATA_ERRORS = (tf.errors.InvalidArgumentError, tf.errors.DataLossError,
                tf.errors.FailedPreconditionError)


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
      count = data_checks.validate_split(files[split], manifest, split)
      logging.info('Split %s: %d examples in %d shards, checked against the '
                   'manifest', split, count, len(files[split]))
  # After the shards, which name the odd one out when they disagree.
  data_checks.check_statistics(manifest, where)
  return manifest, files


def _cached_splits(config: TrainConfig) -> tuple[str, ...]:
  return (config.train_split,) + tuple(config.eval_splits[:1])


def _cache_dir(write_dir: str) -> str | None:
  """Where disk caches go: inside the (local) directory this worker writes;
  None for a remote job directory."""
  if directory_lock.is_remote(write_dir):
    return None
  return job_layout.path(write_dir, job_layout.CACHE_DIR)


def cache_choice(config: TrainConfig) -> cache_policy.CacheChoice:
  """Where this run keeps its records (config.cache, or decided from the
  manifest when it is 'auto').

  Raises:
    manifest_lib.ManifestError: the data directory has no usable manifest.
  """
  manifest = manifest_lib.read(
      dataset_versions.resolve_data_dir(config.data_dir))
  directory = _cache_dir(config.job_dir)
  return cache_policy.choose(
      config.cache, manifest, _cached_splits(config),
      cache_policy.available_memory_bytes(),
      cache_policy.free_disk_bytes(directory) if directory else None)


def _datasets(config: TrainConfig, global_batch: int, worker, manifest,
              files, features: tuple[str, ...], write_dir: str):
  """(training data, validation data or None), sharded for the cluster;
  their inputs are the `features` the model reads."""
  options = cluster.input_options(worker)
  cache = config.cache
  if cache == cache_policy.AUTO:
    choice = cache_choice(config)
    logging.info('%s', choice.describe())
    cache = choice.where
  cache_dir = _cache_dir(write_dir)
  if cache == cache_policy.DISK and write_dir != config.job_dir:
    # A worker other than the chief writes into a scratch directory that
    # the decision did not measure (often a RAM-backed /tmp): it reads its
    # shards every epoch instead.
    logging.info('Worker scratch directory: reading the shards every epoch '
                 'instead of a disk cache')
    cache = cache_policy.NONE
  if cache == cache_policy.DISK:
    if cache_dir is None:
      raise ConfigError('--cache=disk needs a local --job_dir to hold the '
                        f'cache file, not {config.job_dir}')
    tf.io.gfile.makedirs(cache_dir)
  def cache_file(split):
    return job_layout.path(cache_dir, split) if cache_dir else None
  summary = manifest.splits[config.train_split]
  train_data = input_pipeline.make_dataset(
      files[config.train_split], manifest, global_batch, shuffle=True,
      seed=config.seed, shuffle_buffer=config.shuffle_buffer,
      cache=cache, cache_file=cache_file(config.train_split),
      num_examples=(summary.num_examples if config.train_on_augmented
                    else summary.num_examples - summary.num_augmented),
      originals_only=not config.train_on_augmented,
      features=features).with_options(options)
  if not config.eval_splits:
    return train_data, None
  validation = config.eval_splits[0]
  return train_data, input_pipeline.make_dataset(
      files[validation], manifest, global_batch, cache=cache,
      cache_file=cache_file(validation),
      num_examples=manifest.splits[validation].num_examples,
      features=features).with_options(options)


def _fit(config: TrainConfig, strategy, worker: cluster.Worker, manifest,
         files, write_dir: str) -> keras.Model:
  with strategy.scope():
    model = recipes.build(config.model, manifest)
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss=keras.losses.CategoricalCrossentropy(),
        metrics=['accuracy'])
  keras_multi_worker.enable(model, strategy)
  _remove_cache(write_dir)   # a killed run's half-written cache files
  train_data, validation_data = _datasets(
      config, config.batch_size * strategy.num_replicas_in_sync, worker,
      manifest, files, layers.input_names(model), write_dir)
  selecting_members = (isinstance(model, layers.AveragedEnsemble) and
                       validation_data is not None)
  callbacks = fit_callbacks.callbacks(
      config.job_dir, write_dir, config.early_stopping_patience,
      validation_data if selecting_members else None,
      keep_best_epoch=recipes.keeps_best_epoch(config.model))
  if worker.is_chief and not fit_progress.on_terminal():
    callbacks.append(fit_progress.EpochProgress(
        config.batch_size * strategy.num_replicas_in_sync))
  try:
    # shuffle=False: the dataset shuffles itself, seeded (Keras would only
    # warn that it ignores its own shuffle for a tf.data input).
    model.fit(train_data, validation_data=validation_data, shuffle=False,
              epochs=config.epochs,
              verbose=fit_progress.keras_verbosity() if worker.is_chief
              else 0, callbacks=callbacks)
  except _DATA_ERRORS as e:
    all_files = [f for split_files in files.values() for f in split_files]
    raise data_checks.data_error(e, all_files, manifest) from None
  except tf.errors.NotFoundError as e:
    raise _data_gone(e, config.data_dir) from None
  except fit_callbacks.NonFiniteLossError as e:
    # Every split read: a poisoned validation record makes val_loss NaN.
    raise _non_finite_cause(
        e, config, [f for split_files in files.values() for f in split_files],
        manifest) from None
  finally:
    _remove_cache(write_dir)
  return model


def _data_gone(error: tf.errors.NotFoundError,
               data_dir: str) -> input_pipeline.DataError:
  """The one line for records that vanished while training read them."""
  if tf.io.gfile.exists(manifest_lib.manifest_path(data_dir)):
    return input_pipeline.DataError(
        f'a file of {data_dir} went missing while training read it '
        f'({data_checks.tf_reason(error)})')
  return input_pipeline.DataError(
      f'the dataset version {data_dir} was deleted while training read it (a '
      f'later nsynth-tfrecords --overwrite replaces older versions); this '
      f'run cannot go on without it: train again with --overwrite, '
      f'--data_dir={posixpath.dirname(data_dir.rstrip("/"))} reads the '
      f'newest')


def _remove_cache(write_dir: str) -> None:
  """Disk caches are this run's alone: gone before and after it."""
  directory = _cache_dir(write_dir)
  if directory and tf.io.gfile.isdir(directory):
    tf.io.gfile.rmtree(directory)


def _non_finite_cause(error: fit_callbacks.NonFiniteLossError,
                      config: TrainConfig, files_read: list[str],
                      manifest) -> ValueError:
  """The error that says why training went non-finite: the record that
  poisoned it when the data was not validated, else the step size."""
  kept = 'Nothing of that epoch was kept'
  if not config.validate_data:
    problem = data_checks.find_problem(files_read, manifest)
    if problem:
      return input_pipeline.DataError(f'{error} {kept}; the data is at '
                                      f'fault: {problem}')
  checked = ('The data was checked' if config.validate_data else
             'No record of the splits read is NaN, Inf or of an impossible '
             'magnitude')
  return fit_callbacks.NonFiniteLossError(
      f'{error} {kept}. {checked}, so --learning_rate '
      f'{config.learning_rate:g} is likely too high for --model '
      f'{config.model}: train again with a lower one and --overwrite')


def train(config: TrainConfig,
          say: Callable[[str], None] = lambda _: None) -> dict[str, dict]:
  """Trains, keeps the best model and evaluates it.

  Args:
    say: told what is being done besides training's own progress, a line
      at a time.

  Returns:
    The evaluation report per split (empty on workers other than the chief).

  Raises:
    job_layout.JobDirError, input_pipeline.DataError,
    manifest_lib.ManifestError: before any training, naming the path.
    train_config.ConfigError: a --distribution that cannot run here.
    fit_callbacks.NonFiniteLossError: training went NaN or Inf.
  """
  # The version read is recorded with the run's settings, so a resumed run
  # reads the dataset it started on.
  data_dir = dataset_versions.resolve_data_dir(config.data_dir)
  if data_dir != config.data_dir:
    say(f'Reading {data_dir}, the newest complete dataset in '
        f'{config.data_dir}')
  config = dataclasses.replace(config, data_dir=data_dir)
  keras.utils.set_random_seed(config.seed)
  # Before any TF op: multi-worker collectives can only be set up at start.
  strategy = cluster.distribution_strategy(config.distribution)
  worker = cluster.worker_of(strategy)
  if not worker.is_chief:
    return _train_as_worker(config, strategy, worker)
  job_layout.refuse_if_in_use(config.job_dir)
  resume.check_job_dir(config)  # Refuse early; checked again under the lock.
  manifest, files = load_data(config)
  if directory_lock.is_remote(config.job_dir):
    tf.io.gfile.makedirs(config.job_dir)
  with directory_lock.claimed(config.job_dir, '--job_dir',
                              job_layout.JobDirError):
    return _train_as_chief(config, strategy, worker, manifest, files, say)


def _train_as_chief(config: TrainConfig, strategy, worker: cluster.Worker,
                    manifest, files, say: Callable[[str], None]
                    ) -> dict[str, dict]:
  if resume.check_job_dir(config) == 'overwrite':
    logging.warning('Replacing the earlier run in %s', config.job_dir)
    resume.remove_trainer_outputs(config.job_dir)
  tf.io.gfile.makedirs(config.job_dir)
  job_layout.write_json(job_layout.path(config.job_dir, job_layout.JOB_CONFIG),
                        resume.settings_of(config))
  model = _fit(config, strategy, worker, manifest, files, config.job_dir)
  best = job_layout.best_model_path(config.job_dir)
  if not tf.io.gfile.exists(best):
    # Kept at its last epoch, or no validation split to choose one; the
    # guard saw these weights finite.
    fit_callbacks.save_model(model, best)
  history = job_layout.read_history(config.job_dir)
  scores = [row[MONITOR] for row in history if MONITOR in row]
  job_layout.write_json(job_layout.path(config.job_dir, job_layout.FINISHED), {
      'epochs_trained': len(history),
      f'best_{MONITOR}': max(scores) if scores else None,
  })
  if worker.count > 1:
    logging.info('Worker %d of %d (chief) finished; weights fingerprint %s',
                 worker.index, worker.count,
                 cluster.weights_fingerprint(model))
  try:
    return report.evaluate_job(
        config.job_dir, (config.train_split,) + tuple(config.eval_splits),
        say=say)
  except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as e:
    all_files = [f for split_files in files.values() for f in split_files]
    raise data_checks.data_error(e, all_files, manifest) from None
  except tf.errors.NotFoundError as e:
    raise _data_gone(e, config.data_dir) from None


def _train_as_worker(config: TrainConfig, strategy,
                     worker: cluster.Worker) -> dict[str, dict]:
  """Trains in step with the chief; writes only to its own scratch dir."""
  resume.check_job_dir(config)
  manifest, files = load_data(config)
  scratch = tempfile.mkdtemp(prefix=f'nsynth-worker{worker.index}-')
  try:
    backup = job_layout.path(config.job_dir, job_layout.BACKUP_DIR)
    if tf.io.gfile.isdir(backup):  # Resume from the epoch the chief resumes.
      cluster.copy_tree(backup, job_layout.path(scratch,
                                                job_layout.BACKUP_DIR))
    model = _fit(config, strategy, worker, manifest, files, scratch)
    logging.info('Worker %d of %d finished; weights fingerprint %s',
                 worker.index, worker.count,
                 cluster.weights_fingerprint(model))
  finally:
    shutil.rmtree(scratch, ignore_errors=True)
  return {}
