"""What a job directory allows a training run, decided before it writes.

A job directory holds one run (trainer.job_layout). A run may start fresh
in an empty one; resume an interrupted run, but only with the same settings;
replace the trainer's outputs with `overwrite`; and nothing else: a finished
run, or an unfinished one with other settings, is refused naming each
difference.
"""

import os

import tensorflow as tf

from nsynth_common import dataclass_json
from nsynth_common import directory_lock
from nsynth_contracts import manifest as manifest_lib
from trainer import fit_callbacks
from trainer import job_layout
from trainer.train_config import TrainConfig

# Settings that do not change what a run computes: a resumed run may differ
# from the interrupted one in these, and only in these.
FREE_ON_RESUME = ('job_dir', 'overwrite', 'validate_data', 'cache')


def settings_of(config: TrainConfig) -> dict:
  """The config as JSON would hold it (tuples become lists), with a local
  data_dir made absolute: the report and the export read it from anywhere."""
  settings = dataclass_json.to_json(config)
  if not directory_lock.is_remote(config.data_dir):
    settings['data_dir'] = os.path.abspath(config.data_dir)
  return settings


def _finished_message(job_dir: str, finished: dict) -> str:
  monitor = fit_callbacks.MONITOR
  best = finished.get('best_' + monitor)
  what = (f'{finished.get("epochs_trained")} epochs' +
          (f', best {monitor} {best:.3f}' if isinstance(best, float) else ''))
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
  now = settings_of(config)
  read = before.get('data_dir')
  if read != now['data_dir'] and isinstance(read, str) and not (
      tf.io.gfile.exists(manifest_lib.manifest_path(read))):
    raise job_layout.JobDirError(
        f'--job_dir {job_dir} holds an unfinished run on the dataset '
        f'version {read}, which was deleted (a later nsynth-tfrecords '
        f'--overwrite replaces older versions), so it cannot be resumed: '
        f'pass --overwrite to train again on {now["data_dir"]}, or choose '
        f'another --job_dir')
  differences = [f'--{key}: {before.get(key)!r} in the run being resumed, '
                 f'{now[key]!r} now' for key in now
                 if key not in FREE_ON_RESUME and before.get(key) != now[key]]
  if differences:
    raise job_layout.JobDirError(
        f'--job_dir {job_dir} holds an unfinished run with other settings ('
        + '; '.join(differences) + '). Resume it with its own settings, pass '
        '--overwrite to start again with these, or choose another --job_dir')
  return 'resume'


def remove_trainer_outputs(job_dir: str) -> None:
  """What an earlier run of the trainer wrote, and nothing else."""
  for name in job_layout.TRAINER_OUTPUTS:
    target = job_layout.path(job_dir, name)
    if tf.io.gfile.isdir(target):
      tf.io.gfile.rmtree(target)
    elif tf.io.gfile.exists(target):
      tf.io.gfile.remove(target)
