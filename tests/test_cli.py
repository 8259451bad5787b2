"""What every command does alike: nothing at import, quiet logs, one-line
errors. Each check runs in a fresh interpreter, whose start is the point."""

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMANDS = ('trainer.task', 'trainer.evaluate', 'serving.export',
            'serving.predict', 'serving.client', 'demo_data.render',
            'beam_pipelines.nsynth_tfrecords')


def python(code: str, *args: str) -> subprocess.CompletedProcess:
  env = {k: v for k, v in os.environ.items() if k != 'TF_CPP_MIN_LOG_LEVEL'}
  return subprocess.run([sys.executable, '-c', code, *args], cwd=REPO,
                        env=env, capture_output=True, text=True, timeout=120)


def test_importing_cli_changes_nothing_in_the_process():
  result = python('''
import logging, os, sys
from nsynth_common import cli
assert 'TF_CPP_MIN_LOG_LEVEL' not in os.environ, 'env'
assert not logging.getLogger().filters, 'root filters'
assert logging.getLogger().level == logging.WARNING, 'root level'
''')
  assert result.returncode == 0, result.stderr[-2000:]


def test_no_command_imports_tensorflow_before_its_main_quiets_it():
  """TensorFlow reads its log level once, when imported: a command that
  imported it at the top would print its C++ start-up lines."""
  result = python(f'''
import importlib, sys
for name in {COMMANDS!r}:
  importlib.import_module(name)
assert 'tensorflow' not in sys.modules, [
    m for m in sys.modules if m.startswith(('trainer', 'serving'))]
''')
  assert result.returncode == 0, result.stderr[-2000:]


def test_the_trainer_and_serving_never_load_beam():
  """Beam is the job's: the trainer and the export read recordings and
  versions through TensorFlow's file systems (nsynth_common.storage)."""
  result = python('''
import importlib, pkgutil, sys
import serving, trainer
for package in (trainer, serving):
  for found in pkgutil.iter_modules(package.__path__):
    importlib.import_module(f'{package.__name__}.{found.name}')
assert 'apache_beam' not in sys.modules
''')
  assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize('command,flags,message', [
    ('serving.predict', ['--model=/nowhere', 'x.wav'],
     'error: --model /nowhere does not exist'),
    ('serving.export', ['--job_dir=/nowhere', '--export_base=/tmp'],
     'error: /nowhere/job_config.json does not exist: is /nowhere the '
     '--job_dir of a trainer run?'),
    ('trainer.evaluate', ['--job_dir=/nowhere'],
     'error: /nowhere/job_config.json does not exist: is /nowhere the '
     '--job_dir of a trainer run?'),
])
def test_a_command_that_loads_tensorflow_says_one_line_and_nothing_else(
    command, flags, message):
  result = python(f'import runpy; runpy.run_module({command!r}, '
                  f'run_name="__main__")', *flags)
  assert result.returncode == 1
  assert result.stderr.splitlines() == [message]


@pytest.mark.skipif(not os.path.exists('/dev/full'),
                    reason='needs /dev/full, whose every write fails ENOSPC')
@pytest.mark.parametrize('writer', ['keras_weights', 'tf_gfile', 'python'])
def test_a_full_disk_ends_any_command_in_one_line_naming_the_file(
    writer, tmp_path):
  """Writing through a link to /dev/full is a disk that is full from its
  first byte: each library the commands write with reports it its own way
  (h5py, under Keras's weights, prints pages as it frees the half-written
  file and then crashes the interpreter's exit)."""
  target = tmp_path / 'latest.weights.h5'
  target.symlink_to('/dev/full')
  writes = {
      'keras_weights': 'import keras\n'
                       'model = keras.Sequential([keras.Input((30,)), '
                       'keras.layers.Dense(100)])\n'
                       'model.save_weights(sys.argv[1])',
      'tf_gfile': 'import tensorflow as tf\n'
                  'with tf.io.gfile.GFile(sys.argv[1], "wb") as f:\n'
                  '  f.write(b"x" * 100000)',
      'python': 'open(sys.argv[1], "wb").write(b"x" * 100000)',
  }
  result = python('''
import sys
from nsynth_common import cli
def main(argv):
''' + ''.join(f'  {line}\n' for line in writes[writer].splitlines()) + '''
cli.run(lambda: None, main, tensorflow=True, argv=['a_command'])
''', str(target))
  # Python's own write errors carry no file name (only opening does).
  named = f' while writing {target}' if writer != 'python' else ''
  assert result.returncode == 1, result.stderr[-2000:]
  assert result.stderr == (
      f'error: the disk is full (no space left on device){named}; free some '
      f'space, or write elsewhere, and run the command again\n')
