"""Each member of an ensemble kept at its own best epoch.

The members of an AveragedEnsemble learn apart but at different speeds (on
the leave-one-library-out validation, MFCC members of one architecture
peaked anywhere between epochs 13 and 28, heads on a pretrained
representation between 3 and 55). One checkpoint for the whole ensemble
would keep every member at one epoch, too late for some and too early for
others. `MemberSelection` scores every
member on the validation data after each epoch, keeps each member's weights
of its best epoch, stops when no member has improved for `patience` epochs,
and at the end puts each member's best weights in place and saves the
assembled model as the job's best model.

Its state (each member's best score and epoch, and their weights) lives in
`<job_dir>/checkpoints/members/`, written whole or not at all, so a killed
run resumes its selection where it was.
"""

import logging

import keras
import numpy as np
import tensorflow as tf

from trainer import job_layout
from trainer import layers

MEMBERS_DIR = 'members'
_STATE = 'selection.json'


class MemberSelection(keras.callbacks.Callback):
  """Per-member best-epoch selection and early stopping for an ensemble.

  Adds `val_accuracy_<member>` to the epoch's logs, so history.csv and
  TensorBoard show every member.
  """

  def __init__(self, validation_data: tf.data.Dataset, write_dir: str,
               patience: int):
    super().__init__()
    self._validation = validation_data
    self._dir = job_layout.path(write_dir, job_layout.CHECKPOINTS_DIR,
                                MEMBERS_DIR)
    self._best_path = job_layout.best_model_path(write_dir)
    self._patience = patience
    self._state = {}
    self._scores = None

  def on_train_begin(self, logs=None):
    members = self.model.members
    self._scores = tf.function(lambda inputs: [
        member(layers.member_inputs(member, inputs), training=False)
        for member in members])
    tf.io.gfile.makedirs(self._dir)
    state_path = job_layout.path(self._dir, _STATE)
    if tf.io.gfile.exists(state_path):  # Resuming a killed run.
      self._state = job_layout.read_json(state_path)
      logging.info('Resuming the selection of members: %s', ', '.join(
          f'{name} {s["accuracy"]:.3f} (epoch {s["epoch"] + 1})'
          for name, s in sorted(self._state.items())))

  def on_epoch_end(self, epoch, logs=None):
    accuracies = self._member_accuracies()
    for member, accuracy in zip(self.model.members, accuracies):
      if logs is not None:
        logs[f'val_accuracy_{member.name}'] = accuracy
      best = self._state.get(member.name)
      if best is None or accuracy > best['accuracy']:
        _save_weights(member, self._weights_path(member))
        self._state[member.name] = {'accuracy': accuracy, 'epoch': epoch}
    job_layout.write_json(job_layout.path(self._dir, _STATE), self._state)
    if self._patience and all(
        epoch - self._state[m.name]['epoch'] >= self._patience
        for m in self.model.members):
      logging.info('No member improved for %d epochs: stopping',
                   self._patience)
      self.model.stop_training = True

  def on_train_end(self, logs=None):
    """The ensemble of each member's best epoch, saved as the best model."""
    for member in self.model.members:
      path = self._weights_path(member)
      if tf.io.gfile.exists(path):
        member.load_weights(path)
    staging = job_layout.staging_path(self._best_path)
    self.model.save(staging)
    tf.io.gfile.rename(staging, self._best_path, overwrite=True)
    logging.info('Members at their best epochs: %s', ', '.join(
        f'{name} {s["accuracy"]:.3f} (epoch {s["epoch"] + 1})'
        for name, s in sorted(self._state.items())))

  def _member_accuracies(self) -> list[float]:
    correct = np.zeros(len(self.model.members))
    total = 0
    for inputs, one_hot in self._validation:
      truth = np.argmax(one_hot.numpy(), axis=-1)
      for i, scores in enumerate(self._scores(inputs)):
        correct[i] += np.sum(np.argmax(scores.numpy(), axis=-1) == truth)
      total += len(truth)
    return [float(c / max(total, 1)) for c in correct]

  def _weights_path(self, member: keras.Model) -> str:
    return job_layout.path(self._dir, f'{member.name}.weights.h5')


def _save_weights(model: keras.Model, path: str) -> None:
  """Written whole under a staging name, then renamed into place."""
  staging = job_layout.staging_path(path)
  model.save_weights(staging)
  tf.io.gfile.rename(staging, path, overwrite=True)
