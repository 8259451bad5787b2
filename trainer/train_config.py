"""One training run's settings, without importing TensorFlow.

nsynth-train's flags take their defaults from TrainConfig before TensorFlow
is loaded (trainer.task); trainer.train runs it.
"""

import dataclasses

from trainer import model_names

DISTRIBUTIONS = ('default', 'mirrored', 'multi_worker')


class ConfigError(ValueError):
  """The run's settings cannot work here; the message names the setting."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """One training run; the trainer's flags take their defaults from here."""
  data_dir: str
  job_dir: str
  model: str = model_names.EMBEDDING_LINEAR
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
  distribution: str = 'default'          # one of DISTRIBUTIONS
  cache: str = 'auto'                   # auto | memory | disk | none
  shuffle_buffer: int = 10_000
  validate_data: bool = True
  train_on_augmented: bool = True        # use the data's augmented copies
  overwrite: bool = False                # start a finished run again
