"""The packages are floors: each imports only those below it, and serving
takes from the trainer only what a trained job offers (trainer/__init__.py).
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Lowest first.
FLOORS = ('nsynth_common', 'nsynth_contracts', 'beam_pipelines', 'demo_data',
          'trainer', 'serving')
# A trained job: its directory, its model, the features the model reads.
TRAINER_FOR_SERVING = {'trainer.job_layout', 'trainer.models',
                       'trainer.layers'}


def imported_modules(package: str):
  """(file, line, module) for each import of one of our packages."""
  for path in sorted((ROOT / package).glob('*.py')):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
      if isinstance(node, ast.ImportFrom) and node.module:
        names = [f'{node.module}.{a.name}' for a in node.names]
        if node.module in FLOORS:
          yield from ((path.name, node.lineno, n) for n in names)
        else:
          yield path.name, node.lineno, node.module
      elif isinstance(node, ast.Import):
        yield from ((path.name, node.lineno, a.name) for a in node.names)


@pytest.mark.parametrize('package', FLOORS)
def test_no_package_imports_one_above_it(package):
  above = FLOORS[FLOORS.index(package) + 1:]
  wrong = [f'{package}/{f}:{line} imports {module}'
           for f, line, module in imported_modules(package)
           if module.split('.')[0] in above]
  assert not wrong


def test_serving_uses_only_what_a_trained_job_offers():
  used = {module for _, _, module in imported_modules('serving')
          if module.startswith('trainer.')}
  assert used <= TRAINER_FOR_SERVING, used - TRAINER_FOR_SERVING
