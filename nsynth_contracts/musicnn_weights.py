"""Where the musicnn weights come from, as plain NumPy arrays.

The `musicnn` wheel (ISC licence; install it with `pip install --no-deps
musicnn==0.1.0`: its own requirements pin a NumPy and a TensorFlow our stack
cannot take) ships each model as a TF1 checkpoint whose files start with a
dot: `musicnn/<model>/.index`, `musicnn/<model>/.data-00000-of-00001`. We
read those files and never import the package, whose modules need TF1's
graph mode and tf-keras.

Beam workers need no wheel: the launcher reads the weights here, once, and
the DoFn carries the dict (`read_weights`, about 3 MB) pickled to every
worker, which builds the network from it (nsynth_contracts.musicnn_network).
"""

import importlib.util
import os

import numpy as np

from nsynth_contracts import musicnn_architecture


def _convolution(scope: str) -> tuple[str, ...]:
  return (f'{scope}/kernel', f'{scope}/bias')


def _normalization(scope: str) -> tuple[str, ...]:
  return tuple(f'{scope}/{name}' for name in
               ('gamma', 'beta', 'moving_mean', 'moving_variance'))


# Each Keras layer of musicnn_network and the checkpoint variables it holds,
# in the order of its weights. The scopes are numbered in the order
# musicnn/models.py creates its layers; a front-end block holds a
# convolution and the normalisation after it.
CHECKPOINT_NAMES = {
    'input_norm': _normalization('batch_normalization'),
    'timbral_7x38': (*_convolution('conv2d'),
                     *_normalization('batch_normalization_1')),
    'timbral_7x67': (*_convolution('conv2d_1'),
                     *_normalization('batch_normalization_2')),
    'temporal_128': (*_convolution('conv2d_2'),
                     *_normalization('batch_normalization_3')),
    'temporal_64': (*_convolution('conv2d_3'),
                    *_normalization('batch_normalization_4')),
    'temporal_32': (*_convolution('conv2d_4'),
                    *_normalization('batch_normalization_5')),
    'cnn1_conv': _convolution('conv2d_5'),
    'cnn1_norm': _normalization('batch_normalization_6'),
    'cnn2_conv': _convolution('conv2d_6'),
    'cnn2_norm': _normalization('batch_normalization_7'),
    'cnn3_conv': _convolution('conv2d_7'),
    'cnn3_norm': _normalization('batch_normalization_8'),
    'pool_norm': _normalization('batch_normalization_9'),
    'penultimate_dense': _convolution('dense'),
    'penultimate_norm': _normalization('batch_normalization_10'),
    'tags_dense': _convolution('dense_1'),
}

INSTALL_HINT = 'pip install --no-deps musicnn==0.1.0'

# Checkpoint entries that are training state, not the network.
_OPTIMIZER_MARKERS = ('/Adam', 'beta1_power', 'beta2_power')


class MusicnnWeightsError(Exception):
  """The weights cannot be found or read, or are not musicnn's."""


def checkpoint_prefix(model_name: str) -> str:
  """The checkpoint prefix of `model_name` in the installed musicnn wheel.

  Found with importlib's finder, which locates the package without running
  its modules (they import TF1-only code).

  Returns:
    '<site-packages>/musicnn/<model_name>/': the files are the prefix plus
    '.index' and '.data-00000-of-00001'.

  Raises:
    MusicnnWeightsError: the wheel is not installed or lacks the model.
  """
  if model_name not in musicnn_architecture.MODEL_NAMES:
    raise MusicnnWeightsError(
        f'model_name {model_name!r} is not one of '
        f'{musicnn_architecture.MODEL_NAMES}')
  spec = importlib.util.find_spec('musicnn')
  if spec is None or not spec.submodule_search_locations:
    raise MusicnnWeightsError(
        f'the musicnn weights are not installed: {INSTALL_HINT}')
  prefix = os.path.join(spec.submodule_search_locations[0], model_name, '')
  if not os.path.isfile(prefix + '.index'):
    raise MusicnnWeightsError(
        f'the musicnn wheel has no {model_name} checkpoint at {prefix}: '
        f'{INSTALL_HINT}')
  return prefix


def read_weights(model_name: str,
                 prefix: str | None = None) -> dict[str, np.ndarray]:
  """The network's variables of one musicnn checkpoint.

  Args:
    model_name: one of musicnn_architecture.MODEL_NAMES.
    prefix: the checkpoint prefix; None: the installed wheel's.

  Returns:
    {checkpoint variable name: float32 array}, e.g. 'conv2d/kernel'
    [7, 38, 1, 204]; the optimizer's slots are left out.

  Raises:
    MusicnnWeightsError: not found, or not a readable checkpoint.
  """
  prefix = checkpoint_prefix(model_name) if prefix is None else prefix
  # tf.train.load_checkpoint takes a directory to mean "read its `checkpoint`
  # file", and musicnn's names the author's machine; the reader it wraps
  # opens the prefix itself.
  import tensorflow as tf
  # Every tensor is read here, not only the index: a truncated or flipped
  # .data file fails on its tensors ("Checksum does not match").
  try:
    reader = tf.compat.v1.train.NewCheckpointReader(prefix)
    names = sorted(name for name in reader.get_variable_to_shape_map()
                   if not any(m in name for m in _OPTIMIZER_MARKERS))
    return {name: np.asarray(reader.get_tensor(name), np.float32)
            for name in names}
  except (tf.errors.OpError, RuntimeError, ValueError, OSError,
          IndexError) as e:  # IndexError: a .data file cut short
    raise MusicnnWeightsError(
        f'cannot read the {model_name} checkpoint at {prefix}: '
        f'{_first_line(e)}') from None


def _first_line(error: BaseException) -> str:
  """TensorFlow's reason, in one line and without its C++ context."""
  text = getattr(error, 'message', None) or str(error) or type(error).__name__
  return text.strip().splitlines()[0][:200]


def size_bytes(weights: dict[str, np.ndarray]) -> int:
  """Bytes of float32 values: what shipping them to a worker costs."""
  return sum(int(np.asarray(w).size) * 4 for w in weights.values())
