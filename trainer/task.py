r"""Trains an instrument-family classifier on the Beam job's TFRecords.

Usage:
  nsynth-train --data_dir=data/tfrecords --job_dir=jobs/demo \
      [--model=embedding_linear|embedding_mlp|timbre_ensemble|timbre_tcn|\
               stats_mlp|seed_cnn] [--epochs=30] \
      [--batch_size=64] [--learning_rate=1e-3] [--seed=42] \
      [--early_stopping_patience=10] \
      [--train_split=train] [--eval_splits=valid,test] \
      [--distribution=default|mirrored|multi_worker] [--overwrite] \
      [--flagfile=FILE]

Writes into --job_dir: checkpoints/best.keras (best by validation accuracy;
the last epoch for models kept at their last, the default embedding_linear),
history.csv, TensorBoard logs (logs/), backup/ (a killed run started again
with the same command continues from its last finished epoch), and eval/
(metrics JSON, confusion matrices and curves as PNG). Export the best model
for TF Serving with nsynth-export.
"""

import dataclasses
import sys

from absl import flags

from nsynth_common import cli
from trainer import cache_policy
from trainer import model_names
from trainer.train_config import DISTRIBUTIONS
from trainer.train_config import ConfigError
from trainer.train_config import TrainConfig

_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}


def _define_flags() -> None:
  flags.DEFINE_string(
      'data_dir', None, 'The --output_dir of nsynth-tfrecords (its newest '
      'complete version is read, and recorded for a resumed run), or one '
      'version of it.', required=True)
  flags.DEFINE_string(
      'job_dir', None, 'Where checkpoints, logs and the report go (local or '
      'gs://). Re-running with the same --job_dir resumes an interrupted '
      'run.', required=True)
  flags.DEFINE_enum('model', _DEFAULTS['model'], model_names.MODEL_NAMES,
                    'embedding_linear (the default): logistic regression on '
                    'the pretrained representations; embedding_mlp: one '
                    'hidden layer on them; timbre_ensemble: two timbre_tcn '
                    'and two stats_mlp on the MFCCs, averaged; timbre_tcn: '
                    'a temporal conv net on the MFCCs; stats_mlp: an MLP on '
                    'MFCC statistics; seed_cnn: the seed recipe\'s CNN, for '
                    '20 MFCCs.')
  flags.DEFINE_integer('epochs', _DEFAULTS['epochs'], 'Training epochs.',
                       lower_bound=1)
  flags.DEFINE_integer('batch_size', _DEFAULTS['batch_size'], 'Examples per '
                       'replica per step.', lower_bound=1)
  flags.DEFINE_float('learning_rate', _DEFAULTS['learning_rate'],
                     'Adam step size.', lower_bound=0.0)
  flags.DEFINE_integer('seed', _DEFAULTS['seed'], 'Seeds weights, shuffling '
                       'and dropout, so a run is repeatable.')
  flags.DEFINE_integer(
      'early_stopping_patience', _DEFAULTS['early_stopping_patience'],
      'Stop after this many epochs without a better validation accuracy '
      '(0: never).', lower_bound=0)
  flags.DEFINE_string('train_split', _DEFAULTS['train_split'],
                      'Split to train on.')
  flags.DEFINE_list(
      'eval_splits', list(_DEFAULTS['eval_splits']), 'Splits to evaluate on; '
      'the first one is the validation split that picks the best checkpoint.')
  flags.DEFINE_enum('distribution', _DEFAULTS['distribution'],
                    list(DISTRIBUTIONS),
                    'tf.distribute strategy; multi_worker reads TF_CONFIG.')
  _define_data_flags()
  _register_validators()


def _define_data_flags() -> None:
  flags.DEFINE_enum(
      'cache', _DEFAULTS['cache'], list(cache_policy.CHOICES), 'Where to keep '
      'the records after the first epoch: auto decides from the manifest (in '
      'memory when they fit half the available memory, else in a cache file '
      'in --job_dir when the shards are compressed and the disk has room, '
      'else none) and says which; memory, disk or none to choose.')
  flags.DEFINE_integer('shuffle_buffer', _DEFAULTS['shuffle_buffer'],
                       'Examples in the shuffle buffer.', lower_bound=1)
  flags.DEFINE_boolean(
      'validate_data', _DEFAULTS['validate_data'], 'Read every record once '
      'before training to check it against the manifest.')
  flags.DEFINE_boolean(
      'train_on_augmented', _DEFAULTS['train_on_augmented'], 'Train on the '
      'augmented copies the data holds (nsynth-tfrecords --augment_copies); '
      '--notrain_on_augmented trains on the notes as read only.')
  flags.DEFINE_boolean(
      'overwrite', _DEFAULTS['overwrite'], 'Train again from scratch in a '
      '--job_dir that holds a run (its outputs are replaced; nothing else '
      'there is touched).')


def _register_validators() -> None:
  flags.register_validator(
      'learning_rate', lambda v: v > 0, message='--learning_rate must be > 0')
  flags.register_validator(
      'eval_splits', lambda v: len(v) == len(set(v)),
      message='--eval_splits must not repeat a split')
  flags.register_multi_flags_validator(
      ['train_split', 'eval_splits'],
      lambda f: f['train_split'] not in f['eval_splits'],
      message='--train_split must not also be one of --eval_splits')


def config_from_flags(values: flags.FlagValues) -> TrainConfig:
  settings = {name: values[name].value for name in _DEFAULTS}
  settings['eval_splits'] = tuple(settings['eval_splits'])
  return TrainConfig(**settings)


def _decide_cache(config: TrainConfig) -> TrainConfig:
  """The config with --cache=auto decided, saying which in one line."""
  if config.cache != cache_policy.AUTO:
    return config
  from trainer import train
  choice = train.cache_choice(config)
  print(choice.describe(), flush=True)
  return dataclasses.replace(config, cache=choice.where)


def _say(line: str) -> None:
  """What the command is doing besides Keras's epoch lines (on stdout): on
  stderr, as every command's progress."""
  print(line, file=sys.stderr, flush=True)


def _main(argv: list[str]) -> None:
  cli.no_arguments(argv)
  # Imported here, not at the top: TensorFlow reads its log level when it
  # is imported, and cli.run sets it before calling this.
  from nsynth_contracts import manifest
  from trainer import embedding_models
  from trainer import fit_callbacks
  from trainer import input_pipeline
  from trainer import job_layout
  from trainer import report
  from trainer import train
  config = config_from_flags(flags.FLAGS)
  with cli.one_line_errors(manifest.ManifestError, input_pipeline.DataError,
                           job_layout.JobDirError, ConfigError,
                           fit_callbacks.NonFiniteLossError,
                           embedding_models.ModelInputError):
    reports = train.train(_decide_cache(config), say=_say)
  if reports:  # Workers other than the chief report nothing.
    print(report.headline(reports, config.job_dir))


def main() -> None:
  """Console entry point (nsynth-train)."""
  cli.run(_define_flags, _main, tensorflow=True)


if __name__ == '__main__':
  main()
