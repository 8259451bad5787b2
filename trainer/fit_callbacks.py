"""What `fit` runs around each batch and epoch, and the order it runs in.

Keras calls callbacks in list order, so the order is the contract:

1. `FiniteGuard` first: at every batch end it checks the loss and the
   weights, and at every epoch end every logged figure and the weights,
   and raises NonFiniteLossError before anything below records the epoch.
   A NaN feature can leave the loss finite (cross-entropy clips the
   probabilities) while its gradient turns every weight into NaN, so the
   weights are checked, not only the loss.
2. The best model, written under a staging name and renamed into place,
   so a kill while it is written leaves the previous best.keras whole; for
   an ensemble, each member at its own best epoch
   (member_selection.MemberSelection, which also stops early).
3. history.csv and TensorBoard.
4. Early stopping.
5. The backup last: it records an epoch only once everything above has,
   so a run killed in between repeats that epoch when resumed (and the
   report keeps a repeated epoch's last row) instead of losing its row or
   its best model. It keeps the backup before it too, and a backup that a
   kill left half written is replaced by that one when the run resumes.

A run stopped by NonFiniteLossError keeps the backup of its last finite
epoch: started again with the same command it resumes from there, never
from non-finite weights (and with the same poisoned data it stops again;
--validate_data refuses such data before training).
"""

import logging
import math

import keras
import tensorflow as tf

from nsynth_common import disk_space
from trainer import job_layout
from trainer import member_selection
from trainer import models

MONITOR = 'val_accuracy'


class NonFiniteLossError(ValueError):
  """Training produced NaN or Inf; the message says where it was seen."""


class FiniteGuard(keras.callbacks.Callback):
  """Stops training at the first NaN or Inf in the loss or the weights.

  It checks at every epoch end, before anything records the epoch, and
  every `every_batches` batches in between, to stop early. Not at every
  batch: a check waits for the step to finish and costs about a
  millisecond (1.1 ms for the MFCC ensemble's 124 weights on a CPU, whose
  step takes over 100 ms), which a fast accelerator step would feel.
  """

  def __init__(self, every_batches: int = 10):
    super().__init__()
    self._every = every_batches
    self._epoch = 0
    self._all_finite = None

  def on_train_begin(self, logs=None):
    self._all_finite = models.finiteness_check(self.model)

  def on_epoch_begin(self, epoch, logs=None):
    self._epoch = epoch

  def on_train_batch_end(self, batch, logs=None):
    if (batch + 1) % self._every:
      return
    where = f'epoch {self._epoch + 1}, batch {batch + 1}'
    loss = (logs or {}).get('loss')
    if loss is not None and not math.isfinite(float(loss)):
      raise NonFiniteLossError(f'training stopped at {where}: the loss '
                               f'became {float(loss)}.')
    self._check_weights(where)

  def on_epoch_end(self, epoch, logs=None):
    where = f'the end of epoch {epoch + 1}'
    for name, value in sorted((logs or {}).items()):
      if not math.isfinite(float(value)):
        raise NonFiniteLossError(f'training stopped at {where}: {name} '
                                 f'became {float(value)}.')
    self._check_weights(where)

  def _check_weights(self, where: str) -> None:
    bad = models.non_finite_weight(self.model, self._all_finite)
    if bad:
      raise NonFiniteLossError(f'training stopped at {where}: the weights '
                               f'hold NaN or Inf (first {bad}).')


class StagedModelCheckpoint(keras.callbacks.ModelCheckpoint):
  """ModelCheckpoint whose file is written whole or not at all."""

  def __init__(self, filepath: str, **kwargs):
    self.final_path = filepath
    super().__init__(job_layout.staging_path(filepath), **kwargs)

  def on_train_begin(self, logs=None):
    super().on_train_begin(logs)
    if tf.io.gfile.exists(self.filepath):  # Left by a killed run.
      tf.io.gfile.remove(self.filepath)

  def on_epoch_end(self, epoch, logs=None):
    with disk_space.naming(self.filepath):
      super().on_epoch_end(epoch, logs)
    if tf.io.gfile.exists(self.filepath):
      tf.io.gfile.rename(self.filepath, self.final_path, overwrite=True)


class HistoryLogger(keras.callbacks.CSVLogger):
  """CSVLogger that ends on any file system: for a remote path (gs://) Keras
  opens a tf.io.gfile.GFile, which has no `closed`, and its own
  on_train_end fails with AttributeError once training is over."""

  def on_train_end(self, logs=None):
    if self.csv_file is not None:
      self.csv_file.close()
      self.csv_file = None
    self.writer = None


class ResumableBackup(keras.callbacks.BackupAndRestore):
  """BackupAndRestore keeping two backups; one it cannot restore is an
  error in our words."""

  def __init__(self, backup_dir: str):
    super().__init__(backup_dir, double_checkpoint=True)

  def on_train_begin(self, logs=None):
    try:
      super().on_train_begin(logs)
    except (OSError, ValueError, KeyError) as e:
      raise job_layout.JobDirError(
          f'the backup in {self.backup_dir} cannot be restored, nor an '
          f'earlier one ({type(e).__name__}: the run was killed while '
          f'writing it?); pass --overwrite to start again') from None


def save_model(model: keras.Model, path: str) -> None:
  """model.save, written whole under a staging name, then renamed."""
  staging = job_layout.staging_path(path)
  with disk_space.naming(staging):
    model.save(staging)
  tf.io.gfile.rename(staging, path, overwrite=True)


def _best_so_far(job_dir: str) -> float | None:
  """The monitored metric's best value of a run being resumed."""
  values = [row[MONITOR] for row in job_layout.read_history(job_dir)
            if MONITOR in row]
  return max(values) if values else None


def callbacks(job_dir: str, write_dir: str, early_stopping_patience: int,
              members_validation: tf.data.Dataset | None = None,
              keep_best_epoch: bool = True
              ) -> list[keras.callbacks.Callback]:
  """The callbacks of a run of `job_dir`, writing under `write_dir` (the
  job dir itself for the chief), in the order the module describes.

  Args:
    members_validation: for an AveragedEnsemble, the validation data its
      members are each selected on (None: one checkpoint for the model).
    keep_best_epoch: keep the epoch with the best validation accuracy and
      stop early; otherwise neither (the trainer keeps the last epoch).
  """
  tf.io.gfile.makedirs(job_layout.path(write_dir, job_layout.CHECKPOINTS_DIR))
  best_so_far = _best_so_far(job_dir)
  if best_so_far is not None:
    logging.info('Resuming: the best %s so far is %.4f', MONITOR, best_so_far)
  if not keep_best_epoch:
    selection = []
  elif members_validation is not None:
    selection = [member_selection.MemberSelection(
        members_validation, write_dir, early_stopping_patience)]
  else:
    selection = [StagedModelCheckpoint(
        job_layout.best_model_path(write_dir), monitor=MONITOR, mode='max',
        save_best_only=True,
        # A resumed run must not replace the best model with a worse one.
        initial_value_threshold=best_so_far)]
  result = [
      FiniteGuard(),
      *selection,
      HistoryLogger(job_layout.path(write_dir, job_layout.HISTORY_CSV),
                    append=True),
      keras.callbacks.TensorBoard(job_layout.path(write_dir,
                                                  job_layout.LOGS_DIR)),
  ]
  if (early_stopping_patience and members_validation is None and
      keep_best_epoch):
    result.append(keras.callbacks.EarlyStopping(
        monitor=MONITOR, mode='max', patience=early_stopping_patience,
        restore_best_weights=False))
  result.append(ResumableBackup(
      job_layout.path(write_dir, job_layout.BACKUP_DIR)))
  return result
