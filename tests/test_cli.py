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
from nsynth_contracts import cli
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
