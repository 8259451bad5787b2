"""What a trainer job directory holds, and where: the one place it is written.

The trainer writes it; the evaluation report and the serving export read it.
Every access goes through tf.io.gfile, so a job directory may be local or on
cloud storage (gs://), as a multi-worker cluster needs.
"""

import csv
import io
import json
import os
import posixpath

import tensorflow as tf

from nsynth_common import directory_lock

JOB_CONFIG = 'job_config.json'          # the run's settings
FINISHED = 'finished.json'              # written when training has ended
HISTORY_CSV = 'history.csv'             # one row per epoch (CSVLogger)
CHECKPOINTS_DIR = 'checkpoints'
BEST_MODEL = posixpath.join(CHECKPOINTS_DIR, 'best.keras')
BACKUP_DIR = 'backup'                   # BackupAndRestore state
LOGS_DIR = 'logs'                       # TensorBoard
EVAL_DIR = 'eval'                       # the report
CACHE_DIR = 'cache'                     # --cache=disk, while training runs

# Everything above: what --overwrite may delete, and nothing else.
TRAINER_OUTPUTS = (JOB_CONFIG, FINISHED, HISTORY_CSV, CHECKPOINTS_DIR,
                   BACKUP_DIR, LOGS_DIR, EVAL_DIR, CACHE_DIR)


# What the report and the export read from job_config.json.
REQUIRED_SETTINGS = ('data_dir', 'model', 'train_split')


class JobDirError(ValueError):
  """A job directory cannot be used as asked; the message says why."""


def path(job_dir: str, *parts: str) -> str:
  return posixpath.join(job_dir, *parts)


def best_model_path(job_dir: str) -> str:
  return path(job_dir, BEST_MODEL)


def staging_path(file_path: str) -> str:
  """Where a file is written before it is renamed over `file_path`, so that
  no reader, and no run started after a kill, sees it half written. Hidden
  beside it, with its suffix, which Keras reads the format from."""
  head, tail = posixpath.split(file_path)
  return posixpath.join(head, '.staging-' + tail)


def read_json(file_path: str) -> dict:
  with tf.io.gfile.GFile(file_path, 'r') as f:
    return json.load(f)


def write_json(file_path: str, data: dict) -> None:
  """Written whole: to a temporary name first, then renamed over."""
  temporary = file_path + '.tmp'
  with tf.io.gfile.GFile(temporary, 'w') as f:
    f.write(json.dumps(data, indent=2) + '\n')
  tf.io.gfile.rename(temporary, file_path, overwrite=True)


def read_job_config(job_dir: str) -> dict:
  """The settings of the run in `job_dir`.

  Raises:
    JobDirError: naming the path, when there is no run or its config is
      unreadable.
  """
  config_path = path(job_dir, JOB_CONFIG)
  if not tf.io.gfile.exists(config_path):
    raise JobDirError(f'{config_path} does not exist: is {job_dir} the '
                      f'--job_dir of a trainer run?')
  try:
    config = read_json(config_path)
  except (ValueError, RecursionError, tf.errors.OpError) as e:
    raise JobDirError(f'{config_path} is not readable JSON: {e}') from None
  if not isinstance(config, dict) or not all(
      isinstance(config.get(key), str) for key in REQUIRED_SETTINGS):
    raise JobDirError(f'{config_path} is not a trainer\'s job config (it '
                      f'needs {", ".join(REQUIRED_SETTINGS)})')
  return config


def read_history(job_dir: str) -> list[dict]:
  """history.csv, one row per epoch (a resumed run's repeat kept last)."""
  history_path = path(job_dir, HISTORY_CSV)
  if not tf.io.gfile.exists(history_path):
    return []
  by_epoch = {}
  with tf.io.gfile.GFile(history_path, 'r') as f:
    for row in csv.DictReader(io.StringIO(f.read())):
      if row.get('epoch', 'epoch') == 'epoch':
        continue  # A header repeated by CSVLogger after a resume.
      by_epoch[int(row['epoch'])] = {k: float(v) for k, v in row.items()
                                     if v not in ('', None)}
  return [by_epoch[e] for e in sorted(by_epoch)]


def read_finished(job_dir: str) -> dict | None:
  """What `finished.json` says of a run that has ended, or None."""
  finished_path = path(job_dir, FINISHED)
  if not tf.io.gfile.exists(finished_path):
    return None
  try:
    finished = read_json(finished_path)
  except (ValueError, RecursionError, tf.errors.OpError):
    return {}
  return finished if isinstance(finished, dict) else {}


def training_state(job_dir: str) -> str | None:
  """None when the job's training has finished; else one line saying that
  its model is not the finished one: a run still trains it, or its run
  stopped before the end. For the commands that read a job's model.

  Raises:
    JobDirError: `job_dir` holds no trainer run (read_job_config): that is
      the one line to say, not that a run is unfinished.
  """
  config = read_job_config(job_dir)
  if read_finished(job_dir) is not None:
    return None
  try:
    epochs = (f'{len(read_history(job_dir))} of '
              f'{config.get("epochs", "?")} epochs')
  except (ValueError, KeyError, tf.errors.OpError):
    epochs = 'its epochs so far'
  running = directory_lock.holder(job_dir)
  if running:
    return (f'--job_dir {job_dir} is still being trained ({running}): its '
            f'model is the best so far, after {epochs}')
  return (f'--job_dir {job_dir} did not finish training (stopped after '
          f'{epochs}): its model is the best of those; run nsynth-train '
          f'with its settings again to finish it')


def refuse_if_in_use(job_dir: str) -> None:
  """Fails at once on a local job directory that another run holds, or that
  cannot take a lock (read-only): before any data is read, and before what
  the directory holds is judged, which a live run is still changing.

  Raises:
    JobDirError: naming the directory, and the run holding it.
  """
  if directory_lock.is_remote(job_dir) or not os.path.isdir(job_dir):
    return
  with directory_lock.claimed(job_dir, '--job_dir', JobDirError):
    pass
