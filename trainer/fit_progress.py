"""What training says while it runs, on standard output.

On a terminal, Keras's own progress bar: steps, time left, the loss. Off a
terminal (a log file, CI, `make demo` piped), Keras's one line per epoch,
and within an epoch longer than LINE_SECONDS a plain line every
LINE_SECONDS: the step, examples per second and the epoch's time left, so a
slow run is not taken for a stuck one.
"""

import sys
import time

import keras
import tqdm

# Between progress lines within an epoch, off a terminal.
LINE_SECONDS = 60.0


def on_terminal() -> bool:
  return sys.stdout.isatty()


def keras_verbosity() -> int:
  """fit's verbose: the bar on a terminal, a line per epoch otherwise."""
  return 1 if on_terminal() else 2


class EpochProgress(keras.callbacks.Callback):
  """A line every LINE_SECONDS within an epoch (for output that is not a
  terminal, where Keras prints only at the epoch's end)."""

  def __init__(self, examples_per_step: int):
    super().__init__()
    self._examples_per_step = examples_per_step
    self._epoch = 0
    self._started = self._said = 0.0

  def on_epoch_begin(self, epoch, logs=None):
    self._epoch = epoch
    self._started = self._said = time.monotonic()

  def on_train_batch_end(self, batch, logs=None):
    now = time.monotonic()
    if now - self._said < LINE_SECONDS:
      return
    self._said = now
    done, elapsed = batch + 1, now - self._started
    steps = self.params.get('steps')
    where = f'step {done}/{steps}' if steps else f'step {done}'
    left = (f', {tqdm.tqdm.format_interval(elapsed / done * (steps - done))} '
            f'left in this epoch' if steps else '')
    print(f'Epoch {self._epoch + 1}/{self.params.get("epochs")}: {where}, '
          f'{done * self._examples_per_step / elapsed:.0f} examples/s{left}',
          flush=True)
