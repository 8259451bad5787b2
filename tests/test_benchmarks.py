"""The benchmarks import lazily (inside main) and are not run by the suite, so
a renamed module would only show when someone runs them: check every import
of our own packages names a module or attribute that exists."""

import ast
import importlib
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
OURS = ('nsynth_common', 'nsynth_contracts', 'beam_pipelines', 'demo_data',
        'trainer', 'serving', 'benchmarks')
BENCHMARKS = sorted((ROOT / 'benchmarks').glob('*.py'))


def own_imports(path: pathlib.Path):
  """(module, attribute or None, line) for each import of our packages."""
  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.ImportFrom) and node.module and \
        node.module.split('.')[0] in OURS:
      for alias in node.names:
        yield node.module, alias.name, node.lineno
    elif isinstance(node, ast.Import):
      for alias in node.names:
        if alias.name.split('.')[0] in OURS:
          yield alias.name, None, node.lineno


def attribute_lookups(path: pathlib.Path):
  """(module alias, attribute, line) for `alias.attribute` where the alias
  is one of our modules imported by `from package import module`."""
  tree = ast.parse(path.read_text(), str(path))
  aliases = {}
  for node in ast.walk(tree):
    if isinstance(node, ast.ImportFrom) and node.module in OURS:
      for alias in node.names:
        aliases[alias.asname or alias.name] = f'{node.module}.{alias.name}'
  for node in ast.walk(tree):
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
        and node.value.id in aliases:
      yield aliases[node.value.id], node.attr, node.lineno


@pytest.mark.parametrize('path', BENCHMARKS, ids=lambda p: p.name)
def test_every_benchmark_imports_what_exists(path):
  missing = []
  for module, name, line in own_imports(path):
    imported = importlib.import_module(module)
    if name is not None and not hasattr(imported, name):
      try:
        importlib.import_module(f'{module}.{name}')
      except ModuleNotFoundError:
        missing.append(f'line {line}: {module}.{name}')
  for module, attribute, line in attribute_lookups(path):
    try:
      imported = importlib.import_module(module)
    except ModuleNotFoundError:
      continue  # reported above
    if not hasattr(imported, attribute):
      missing.append(f'line {line}: {module}.{attribute}')
  assert not missing, f'{path.name} uses what no longer exists: {missing}'
