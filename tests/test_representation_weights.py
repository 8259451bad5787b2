"""Damaged weights are refused in one line where the job starts.

Every tensor is read, every name and shape the network needs is checked,
every value must be finite, and the network must answer a tone finitely,
before any work or output. The damaged checkpoints are copies of the real
one: cut short, missing, a flipped bit, and rewritten (with TensorFlow's own
checkpoint writer) without a variable, with a wrong shape, with NaN, with
absurd biases.
"""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from beam_pipelines import job as job_lib
from beam_pipelines import nsynth_tfrecords
from nsynth_contracts import musicnn_representation
from nsynth_contracts import musicnn_weights
from nsynth_contracts import representation

MODEL = 'MTT_musicnn'
DATA = '.data-00000-of-00001'


def copy_checkpoint(directory) -> str:
  """A copy of the installed MTT_musicnn checkpoint; returns its prefix."""
  source = musicnn_weights.checkpoint_prefix(MODEL)
  target = os.path.join(str(directory), MODEL, '')
  os.makedirs(target)
  for suffix in ('.index', DATA):
    shutil.copy(source + suffix, target + suffix)
  return target


def write_checkpoint(directory, weights) -> str:
  """`weights` as a TF checkpoint, written by TensorFlow's SaveV2."""
  prefix = os.path.join(str(directory), MODEL, '')
  os.makedirs(prefix)
  names = sorted(weights)
  tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names,
                    shape_and_slices=[''] * len(names),
                    tensors=[tf.constant(weights[n]) for n in names])
  return prefix


def truncated(tmp_path):
  prefix = copy_checkpoint(tmp_path)
  data = open(prefix + DATA, 'rb').read()
  open(prefix + DATA, 'wb').write(data[:len(data) // 2])
  return prefix


def data_missing(tmp_path):
  prefix = copy_checkpoint(tmp_path)
  os.remove(prefix + DATA)
  return prefix


def bit_flipped(tmp_path):
  """One bit flipped inside a tensor the network uses (the file also holds
  the optimizer's slots, which are never read)."""
  prefix = copy_checkpoint(tmp_path)
  data = bytearray(open(prefix + DATA, 'rb').read())
  bias = musicnn_weights.read_weights(MODEL)['dense/bias'].astype('<f4')
  where = bytes(data).find(bias.tobytes())
  assert where >= 0
  data[where + 10] ^= 0x10
  open(prefix + DATA, 'wb').write(bytes(data))
  return prefix


def _rewritten(change):
  def damaged(tmp_path):
    weights = musicnn_weights.read_weights(MODEL)
    change(weights)
    return write_checkpoint(tmp_path, weights)
  return damaged


def _drop(weights):
  del weights['conv2d_2/kernel']


def _reshape(weights):
  weights['dense/bias'] = weights['dense/bias'][:100]


def _nan(weights):
  weights['batch_normalization_3/gamma'][7] = np.nan


def _absurd(weights):
  for name in weights:
    if name.endswith('/bias'):
      weights[name] = np.full_like(weights[name], 1e30)


DAMAGES = {
    'truncated': (truncated, 'cannot read the MTT_musicnn checkpoint at '),
    'data_missing': (data_missing,
                     'cannot read the MTT_musicnn checkpoint at '),
    'bit_flipped': (bit_flipped, 'cannot read the MTT_musicnn checkpoint at '),
    'variable_missing': (_rewritten(_drop),
                         'the musicnn weights have no conv2d_2/kernel'),
    'wrong_shape': (_rewritten(_reshape),
                    'the musicnn weight dense/bias has shape (100,)'),
    'nan': (_rewritten(_nan), 'hold NaN or Inf (first in '
                              'batch_normalization_3/gamma)'),
    'absurd_biases': (_rewritten(_absurd),
                      'give non-finite values for a plain tone'),
}


@pytest.fixture(params=sorted(DAMAGES))
def damaged(request, tmp_path, monkeypatch):
  """(the damaged checkpoint's prefix, the words its refusal holds), with
  the musicnn weights looked for there."""
  make, words = DAMAGES[request.param]
  prefix = make(tmp_path / 'weights')
  real = musicnn_weights.checkpoint_prefix
  monkeypatch.setattr(musicnn_weights, 'checkpoint_prefix',
                      lambda name: prefix if name == MODEL else real(name))
  return prefix, words


def test_damaged_weights_are_refused_naming_them(damaged):
  prefix, words = damaged
  with pytest.raises(representation.RepresentationError) as error:
    representation.WithWeights.read(musicnn_representation.DEFAULT)
  message = str(error.value)
  assert words in message
  assert len(message.splitlines()) == 1


def test_the_job_refuses_them_before_any_work_or_output(damaged, tiny_demo,
                                                        tmp_path):
  prefix, words = damaged
  out = tmp_path / 'out'
  with pytest.raises(job_lib.JobInputError) as error:
    nsynth_tfrecords.run([f'--input={tiny_demo / "nsynth-test"}',
                          f'--output_dir={out}'])
  message = str(error.value)
  assert message.startswith('--embedding=MTT_musicnn:midend: ')
  assert words in message and message.endswith('(or pass --embedding=none)')
  assert not out.exists()


def test_the_installed_weights_pass_every_check():
  loaded = representation.WithWeights.read(musicnn_representation.DEFAULT)
  assert loaded.weights_sha256 == representation.weights_sha256(
      musicnn_weights.read_weights(MODEL))
