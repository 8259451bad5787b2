"""Training: input pipelines, a model, callbacks, fit, then the report.

`train(TrainConfig)` is the library entry; trainer.task is its command.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os

import keras
import tensorflow as tf

from nsynth_contracts import manifest as manifest_lib
from trainer import evaluate
from trainer import input_pipeline
from trainer import models

JOB_CONFIG = 'job_config.json'
BEST_MODEL = os.path.join('checkpoints', 'best.keras')
MONITOR = 'val_accuracy'


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  data_dir: str
  job_dir: str
  model: str = 'timbre_tcn'
  epochs: int = 20
  batch_size: int = 64
  learning_rate: float = 1e-3
  seed: int = 42
  early_stopping_patience: int = 0       # 0: off
  train_split: str = 'train'
  eval_splits: tuple[str, ...] = ('valid', 'test')
  distribution: str = 'default'          # default | mirrored | multi_worker
  cache: bool = True
  shuffle_buffer: int = 10_000
  validate_data: bool = True
  export_base: str | None = None         # None: <job_dir>/export
  model_name: str = 'nsynth_instrument'


def best_model_path(job_dir: str) -> str:
  return os.path.join(job_dir, BEST_MODEL)


def read_job_config(job_dir: str) -> dict:
  path = os.path.join(job_dir, JOB_CONFIG)
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path} does not exist: is {job_dir} the '
                            f'--job_dir of a trainer.task run?')
  with open(path) as f:
    return json.load(f)


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
      raise ValueError('--distribution=multi_worker needs TF_CONFIG to '
                       'describe the cluster')
    return tf.distribute.MultiWorkerMirroredStrategy()
  raise ValueError(f'Unknown --distribution {name!r}')


def _best_so_far(job_dir: str) -> float | None:
  """The monitored metric's best value of a run being resumed."""
  values = [row[MONITOR] for row in evaluate.read_history(job_dir)
            if MONITOR in row]
  return max(values) if values else None


def callbacks(config: TrainConfig) -> list[keras.callbacks.Callback]:
  job_dir = config.job_dir
  os.makedirs(os.path.join(job_dir, 'checkpoints'), exist_ok=True)
  result = [
      # First, so an epoch is backed up before anything else records it.
      keras.callbacks.BackupAndRestore(os.path.join(job_dir, 'backup')),
      keras.callbacks.ModelCheckpoint(
          best_model_path(job_dir), monitor=MONITOR, mode='max',
          save_best_only=True,
          # A resumed run must not replace the best model with a worse one.
          initial_value_threshold=_best_so_far(job_dir)),
      keras.callbacks.CSVLogger(os.path.join(job_dir, evaluate.HISTORY_CSV),
                                append=True),
      keras.callbacks.TensorBoard(os.path.join(job_dir, 'logs')),
  ]
  if config.early_stopping_patience:
    result.append(keras.callbacks.EarlyStopping(
        monitor=MONITOR, mode='max', patience=config.early_stopping_patience,
        restore_best_weights=False))
  return result


def load_data(config: TrainConfig):
  """The manifest and each split's shards, validated before any training."""
  manifest = manifest_lib.read(config.data_dir)
  files = {}
  for split in (config.train_split,) + tuple(config.eval_splits):
    files[split] = input_pipeline.split_files(config.data_dir, manifest,
                                              split)
    if config.validate_data:
      count = input_pipeline.validate_split(files[split], manifest, split)
      logging.info('Split %s: %d examples in %d shards, checked against the '
                   'manifest', split, count, len(files[split]))
  return manifest, files


def train(config: TrainConfig) -> tuple[dict[str, dict], str]:
  """Trains, keeps the best model, evaluates it and exports it for serving.

  Returns:
    (the evaluation report per split, the export's version directory).
  """
  keras.utils.set_random_seed(config.seed)
  # Before any TF op: multi-worker collectives can only be set up at start.
  strategy = distribution_strategy(config.distribution)
  manifest, files = load_data(config)
  os.makedirs(config.job_dir, exist_ok=True)
  with open(os.path.join(config.job_dir, JOB_CONFIG), 'w') as f:
    json.dump(dataclasses.asdict(config), f, indent=2)

  global_batch = config.batch_size * strategy.num_replicas_in_sync
  train_data = input_pipeline.make_dataset(
      files[config.train_split], manifest, global_batch, shuffle=True,
      seed=config.seed, shuffle_buffer=config.shuffle_buffer,
      cache=config.cache,
      num_examples=manifest.splits[config.train_split].num_examples)
  validation_data = None
  if config.eval_splits:
    validation_data = input_pipeline.make_dataset(
        files[config.eval_splits[0]], manifest, global_batch,
        cache=config.cache,
        num_examples=manifest.splits[config.eval_splits[0]].num_examples)
  with strategy.scope():
    model = models.build(config.model, manifest)
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss=keras.losses.CategoricalCrossentropy(),
        metrics=['accuracy'])
  model.fit(train_data, validation_data=validation_data,
            epochs=config.epochs, callbacks=callbacks(config), verbose=2)

  if not os.path.exists(best_model_path(config.job_dir)):
    model.save(best_model_path(config.job_dir))  # no validation split
  reports = evaluate.evaluate_job(
      config.job_dir, (config.train_split,) + tuple(config.eval_splits))
  from serving import export  # pylint: disable=g-import-not-at-top
  export_dir = export.export_job(
      config.job_dir, config.export_base or os.path.join(config.job_dir,
                                                         'export'),
      config.model_name)
  return reports, export_dir
