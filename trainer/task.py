r"""Trains an instrument-family classifier on the Beam job's TFRecords.

Usage:
  nsynth-train --data_dir=data/tfrecords --job_dir=jobs/demo \
      [--model=timbre_ensemble|timbre_tcn|stats_mlp|seed_cnn] [--epochs=30] \
      [--batch_size=64] [--learning_rate=1e-3] [--seed=42] \
      [--early_stopping_patience=10] \
      [--train_split=train] [--eval_splits=valid,test] \
      [--distribution=default|mirrored|multi_worker] [--overwrite] \
      [--flagfile=FILE]

Writes into --job_dir: checkpoints/best.keras (best by validation accuracy),
history.csv, TensorBoard logs (logs/), backup/ (a killed run started again
with the same command continues from its last finished epoch), and eval/
(metrics JSON, confusion matrices and curves as PNG). Export the best model
for TF Serving with nsynth-export.
"""

# First: it quiets TensorFlow before anything imports it.
from nsynth_contracts import cli

# isort: split

import dataclasses

from absl import flags

# The model names, without importing Keras to learn them (trainer.models
# checks that they match).
MODEL_NAMES = ('seed_cnn', 'stats_mlp', 'timbre_ensemble', 'timbre_tcn')


def _define_flags() -> None:
  from trainer import train  # pylint: disable=g-import-not-at-top
  defaults = {f.name: f.default for f in dataclasses.fields(train.TrainConfig)}
  flags.DEFINE_string(
      'data_dir', None, 'Output dir of nsynth-tfrecords (holds '
      'manifest.json).', required=True)
  flags.DEFINE_string(
      'job_dir', None, 'Where checkpoints, logs and the report go (local or '
      'gs://). Re-running with the same --job_dir resumes an interrupted '
      'run.', required=True)
  flags.DEFINE_enum('model', defaults['model'], MODEL_NAMES,
                    'timbre_ensemble: two timbre_tcn and two stats_mlp, '
                    'averaged (the default); timbre_tcn: our temporal conv '
                    'net; stats_mlp: an MLP on MFCC statistics; seed_cnn: '
                    'the blog\'s CNN.')
  flags.DEFINE_integer('epochs', defaults['epochs'], 'Training epochs.',
                       lower_bound=1)
  flags.DEFINE_integer('batch_size', defaults['batch_size'], 'Examples per '
                       'replica per step.', lower_bound=1)
  flags.DEFINE_float('learning_rate', defaults['learning_rate'],
                     'Adam step size.', lower_bound=0.0)
  flags.DEFINE_integer('seed', defaults['seed'], 'Seeds weights, shuffling '
                       'and dropout, so a run is repeatable.')
  flags.DEFINE_integer(
      'early_stopping_patience', defaults['early_stopping_patience'],
      'Stop after this many epochs without a better validation accuracy '
      '(0: never).', lower_bound=0)
  flags.DEFINE_string('train_split', defaults['train_split'],
                      'Split to train on.')
  flags.DEFINE_list(
      'eval_splits', list(defaults['eval_splits']), 'Splits to evaluate on; '
      'the first one is the validation split that picks the best checkpoint.')
  flags.DEFINE_enum('distribution', defaults['distribution'],
                    list(train.DISTRIBUTIONS),
                    'tf.distribute strategy; multi_worker reads TF_CONFIG.')
  flags.DEFINE_boolean('cache', defaults['cache'], 'Cache the records in '
                       'memory after the first epoch (when the splits fit).')
  flags.DEFINE_integer('shuffle_buffer', defaults['shuffle_buffer'],
                       'Examples in the shuffle buffer.', lower_bound=1)
  flags.DEFINE_boolean(
      'validate_data', defaults['validate_data'], 'Read every record once '
      'before training to check it against the manifest.')
  flags.DEFINE_boolean(
      'train_on_augmented', defaults['train_on_augmented'], 'Train on the '
      'augmented copies the data holds (nsynth-tfrecords --augment_copies); '
      '--notrain_on_augmented trains on the notes as read only.')
  flags.DEFINE_boolean(
      'overwrite', defaults['overwrite'], 'Train again from scratch in a '
      '--job_dir that holds a run (its outputs are replaced; nothing else '
      'there is touched).')
  flags.register_validator(
      'learning_rate', lambda v: v > 0, message='--learning_rate must be > 0')
  flags.register_validator(
      'eval_splits', lambda v: len(v) == len(set(v)),
      message='--eval_splits must not repeat a split')
  flags.register_multi_flags_validator(
      ['train_split', 'eval_splits'],
      lambda f: f['train_split'] not in f['eval_splits'],
      message='--train_split must not also be one of --eval_splits')


def config_from_flags(values: flags.FlagValues):
  from trainer import train  # pylint: disable=g-import-not-at-top
  names = {f.name for f in dataclasses.fields(train.TrainConfig)}
  settings = {name: values[name].value for name in names}
  settings['eval_splits'] = tuple(settings['eval_splits'])
  return train.TrainConfig(**settings)


def _main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise cli.UserError(f'unexpected arguments {argv[1:]}')
  from trainer import evaluate  # pylint: disable=g-import-not-at-top
  from trainer import train  # pylint: disable=g-import-not-at-top
  config = config_from_flags(flags.FLAGS)
  reports = train.train(config)
  if reports:  # Workers other than the chief report nothing.
    evaluate.print_headline(reports, config.job_dir)


def main() -> None:
  """Console entry point (nsynth-train)."""
  from nsynth_contracts import manifest  # pylint: disable=g-import-not-at-top
  from trainer import fit_callbacks  # pylint: disable=g-import-not-at-top
  from trainer import input_pipeline  # pylint: disable=g-import-not-at-top
  from trainer import job_layout  # pylint: disable=g-import-not-at-top
  from trainer import train  # pylint: disable=g-import-not-at-top
  cli.run(_define_flags, _main, user_errors=(
      manifest.ManifestError, input_pipeline.DataError,
      job_layout.JobDirError, train.ConfigError,
      fit_callbacks.NonFiniteLossError))


if __name__ == '__main__':
  main()
