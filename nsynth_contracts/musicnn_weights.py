"""Where the musicnn weights come from, as plain NumPy arrays.

The `musicnn` wheel (ISC licence; install it with `pip install --no-deps
musicnn==0.1.0`: its own requirements pin a NumPy and a TensorFlow our stack
cannot take) ships each model as a TF1 checkpoint whose files start with a
dot: `musicnn/<model>/.index`, `musicnn/<model>/.data-00000-of-00001`. We
read those files and never import the package, whose modules need TF1's
graph mode and tf-keras.

Beam workers need no wheel: the launcher reads the weights here, once, and
the DoFn carries the dict (`read_weights`, about 3 MB) pickled to every
worker, which builds the network from it (nsynth_contracts.embedding).
`weights_sha256` names exactly the weights used, for the manifest.
"""

import hashlib
import importlib.util
import os

import numpy as np

from nsynth_contracts import embedding_params

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
  if model_name not in embedding_params.MODEL_NAMES:
    raise MusicnnWeightsError(
        f'model_name {model_name!r} is not one of '
        f'{embedding_params.MODEL_NAMES}')
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
    model_name: one of embedding_params.MODEL_NAMES.
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
  try:
    reader = tf.compat.v1.train.NewCheckpointReader(prefix)
  except (tf.errors.OpError, RuntimeError, ValueError) as e:
    raise MusicnnWeightsError(
        f'cannot read the {model_name} checkpoint at {prefix} '
        f'({type(e).__name__})') from None
  names = sorted(name for name in reader.get_variable_to_shape_map()
                 if not any(m in name for m in _OPTIMIZER_MARKERS))
  return {name: np.asarray(reader.get_tensor(name), np.float32)
          for name in names}


def weights_sha256(weights: dict[str, np.ndarray]) -> str:
  """SHA-256 of the weights as the network uses them.

  Over names, shapes and float32 little-endian bytes in name order, so the
  same weights give the same digest however they travelled (read from the
  wheel, or unpickled on a worker), and any changed value changes it.
  """
  digest = hashlib.sha256()
  for name in sorted(weights):
    array = np.ascontiguousarray(weights[name], dtype='<f4')
    digest.update(f'{name}:{array.shape};'.encode())
    digest.update(array.tobytes())
  return digest.hexdigest()


def size_bytes(weights: dict[str, np.ndarray]) -> int:
  """Bytes of float32 values: what shipping them to a worker costs."""
  return sum(int(np.asarray(w).size) * 4 for w in weights.values())
