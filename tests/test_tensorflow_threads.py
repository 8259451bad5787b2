"""The Beam job's TensorFlow runs one inter-op thread: each thread that runs
a oneDNN kernel keeps its own primitive cache, and the default pool
multiplied the job's memory (6.9-9.3 GB at 20,000 notes, 2.2 GB with one)."""

import os
import subprocess
import sys

from beam_pipelines import tensorflow_threads

_VARIABLE = tensorflow_threads.INTER_OP_THREADS_VARIABLE


def _inter_op_threads_after_worker_setup(env) -> str:
  """A fresh process, as a worker on another machine starts."""
  script = (
      'from beam_pipelines import featurize\n'
      'from nsynth_contracts import features\n'
      'featurize.Featurizer(\n'
      '    features.DEFAULT_PARAMS, keep_audio=False, batch_size=4,\n'
      '    jit_compile=False, train_split="train",\n'
      '    augment=featurize.augmentation.NO_AUGMENTATION).setup()\n'
      'import tensorflow as tf\n'
      'print(tf.config.threading.get_inter_op_parallelism_threads())\n')
  done = subprocess.run([sys.executable, '-c', script], capture_output=True,
                        text=True, check=True,
                        env={**env, 'TF_CPP_MIN_LOG_LEVEL': '3'})
  return done.stdout.split()[-1]


def test_a_worker_that_nothing_configured_runs_one_inter_op_thread():
  env = {k: v for k, v in os.environ.items() if k != _VARIABLE}
  assert _inter_op_threads_after_worker_setup(env) == '1'


def test_the_launcher_chooses_one_thread_unless_the_user_did(monkeypatch):
  monkeypatch.delenv(_VARIABLE, raising=False)
  tensorflow_threads.for_this_process()
  assert os.environ[_VARIABLE] == '1'
  monkeypatch.setenv(_VARIABLE, '4')
  tensorflow_threads.for_this_process()
  assert os.environ[_VARIABLE] == '4'
