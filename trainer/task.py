r"""Trains an instrument-family classifier on the Beam job's TFRecords.

Usage:
  python -m trainer.task --data_dir=data/tfrecords --job_dir=jobs/demo \
      [--model=timbre_tcn|seed_cnn] [--epochs=20] [--batch_size=64] \
      [--learning_rate=1e-3] [--seed=42] [--early_stopping_patience=0] \
      [--train_split=train] [--eval_splits=valid,test] \
      [--distribution=default|mirrored|multi_worker] [--flagfile=FILE]

Writes into --job_dir: checkpoints/best.keras (best by validation accuracy),
history.csv, TensorBoard logs (logs/), backup/ (a killed run started again
with the same command continues from its last finished epoch), and eval/
(metrics JSON, confusion matrices and curves as PNG). The best model is then
exported for TF Serving to <export_base>/<model_name>/<version>/.
"""

from __future__ import annotations

from absl import app
from absl import flags

from trainer import models

_DATA_DIR = flags.DEFINE_string(
    'data_dir', None, 'Output dir of beam_pipelines.nsynth_tfrecords '
    '(holds manifest.json).', required=True)
_JOB_DIR = flags.DEFINE_string(
    'job_dir', None, 'Where checkpoints, logs and the report go. Re-running '
    'with the same --job_dir resumes an interrupted run.', required=True)
_MODEL = flags.DEFINE_enum('model', 'timbre_tcn', sorted(models.MODELS),
                           'seed_cnn: the blog\'s CNN; timbre_tcn: ours.')
_EPOCHS = flags.DEFINE_integer('epochs', 20, 'Training epochs.', lower_bound=1)
_BATCH_SIZE = flags.DEFINE_integer('batch_size', 64, 'Examples per replica '
                                   'per step.', lower_bound=1)
_LEARNING_RATE = flags.DEFINE_float('learning_rate', 1e-3, 'Adam step size.',
                                    lower_bound=0.0)
_SEED = flags.DEFINE_integer('seed', 42, 'Seeds weights, shuffling and '
                             'dropout, so a run is repeatable.')
_PATIENCE = flags.DEFINE_integer(
    'early_stopping_patience', 0, 'Stop after this many epochs without a '
    'better validation accuracy (0: never).', lower_bound=0)
_TRAIN_SPLIT = flags.DEFINE_string('train_split', 'train',
                                   'Split to train on.')
_EVAL_SPLITS = flags.DEFINE_list(
    'eval_splits', ['valid', 'test'], 'Splits to evaluate on; the first '
    'one is the validation split that picks the best checkpoint.')
_DISTRIBUTION = flags.DEFINE_enum(
    'distribution', 'default', ['default', 'mirrored', 'multi_worker'],
    'tf.distribute strategy; multi_worker reads TF_CONFIG.')
_CACHE = flags.DEFINE_boolean('cache', True, 'Cache the records in memory '
                              'after the first epoch (when the splits fit).')
_SHUFFLE_BUFFER = flags.DEFINE_integer('shuffle_buffer', 10_000,
                                       'Examples in the shuffle buffer.',
                                       lower_bound=1)
_EXPORT_BASE = flags.DEFINE_string(
    'export_base', None, 'The best model is exported for TF Serving to '
    '<export_base>/<model_name>/<version>/ (default: <job_dir>/export).')
_MODEL_NAME = flags.DEFINE_string('model_name', 'nsynth_instrument',
                                  'TF Serving model name of the export.')
_VALIDATE_DATA = flags.DEFINE_boolean(
    'validate_data', True, 'Read every record once before training to check '
    'it against the manifest.')

flags.register_validator(
    'learning_rate', lambda v: v > 0, message='--learning_rate must be > 0')
flags.register_validator(
    'eval_splits', lambda v: len(v) == len(set(v)),
    message='--eval_splits must not repeat a split')
flags.register_multi_flags_validator(
    ['train_split', 'eval_splits'],
    lambda f: f['train_split'] not in f['eval_splits'],
    message='--train_split must not also be one of --eval_splits')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  from trainer import evaluate  # pylint: disable=g-import-not-at-top
  from trainer import input_pipeline  # pylint: disable=g-import-not-at-top
  from trainer import train  # pylint: disable=g-import-not-at-top
  config = train.TrainConfig(
      data_dir=_DATA_DIR.value, job_dir=_JOB_DIR.value, model=_MODEL.value,
      epochs=_EPOCHS.value, batch_size=_BATCH_SIZE.value,
      learning_rate=_LEARNING_RATE.value, seed=_SEED.value,
      early_stopping_patience=_PATIENCE.value,
      train_split=_TRAIN_SPLIT.value, eval_splits=tuple(_EVAL_SPLITS.value),
      distribution=_DISTRIBUTION.value, cache=_CACHE.value,
      shuffle_buffer=_SHUFFLE_BUFFER.value,
      validate_data=_VALIDATE_DATA.value, export_base=_EXPORT_BASE.value,
      model_name=_MODEL_NAME.value)
  try:
    reports, export_dir = train.train(config)
  except (FileNotFoundError, input_pipeline.DataError) as e:
    raise app.UsageError(str(e)) from e
  evaluate.print_headline(reports, config.job_dir)
  print(f'Exported for TF Serving: {export_dir}')


def run():
  """Console entry point."""
  app.run(main)


if __name__ == '__main__':
  run()
