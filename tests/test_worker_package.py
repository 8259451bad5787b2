"""The worker package: what Dataflow, Flink and Spark workers install.

With --setup_file, Beam builds the project's sdist and every worker
pip-installs it: `install_requires`, nothing else. Here that sdist goes into
a clean virtual environment (no checkout on its path, none of the extras,
not the vendored musicnn package whose weights the embedding uses), and the
job's featurising DoFn runs there in a process of its own, pickled by the
launcher with the embedding's weights inside, as a worker receives it. Its
batches must be the launcher's own.

It installs about 2 GB of wheels (from pip's cache, or PyPI) and takes
minutes, so `make test` leaves it out; `make check-worker-package` runs it
(its last figures: BUILD_NOTES.md, "Outgrowing one machine").
"""

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.skipif(
    os.environ.get('NSYNTH_WORKER_PACKAGE') != '1',
    reason='installs the worker package in a clean environment (minutes): '
           'make check-worker-package')

# Run by the worker's interpreter, from outside the checkout: the DoFn as
# the launcher pickled it, on the notes it sent.
_WORKER = '''
import pickle, sys
import beam_pipelines
from apache_beam.internal import pickler
from beam_pipelines.batches import FeaturizedBatch
fn, notes = pickler.loads(open(sys.argv[1], 'rb').read())
fn.setup()
batches = [b for b in fn.process(notes) if isinstance(b, FeaturizedBatch)]
with open(sys.argv[2], 'wb') as f:
  pickle.dump((beam_pipelines.__file__, batches), f)
'''


def launcher_payload(split_dir, notes_wanted: int):
  """(the pickled DoFn and notes, as Beam ships them, and the notes)."""
  from apache_beam.internal import pickler

  from beam_pipelines import featurize
  from beam_pipelines import pipeline
  from beam_pipelines import reading
  from beam_pipelines.job_config import JobConfig
  from nsynth_contracts import examples_json
  from nsynth_contracts import representation
  config = JobConfig(inputs=((str(split_dir), 'test'),), output_dir='')
  weights = tuple(representation.WithWeights.read(r)
                  for r in config.representations)
  entries = [e for e in reading.read_examples_json(str(split_dir))
             if examples_json.entry_problem(e) is None][:notes_wanted]
  notes = [examples_json.note_from_entry(
      e.key, examples_json.as_plain_json(e.value), str(split_dir), 'test')
           for e in entries]
  fn = featurize.FeaturizeNotesFn(pipeline.featurizer(config, weights))
  return pickler.dumps((fn, notes)), notes


def test_the_worker_package_featurizes_in_a_clean_environment(tiny_demo,
                                                              tmp_path):
  dist = tmp_path / 'dist'
  subprocess.run([sys.executable, 'setup.py', '--quiet', 'sdist',
                  f'--dist-dir={dist}'], cwd=REPO, check=True,
                 capture_output=True)
  [sdist] = dist.glob('*.tar.gz')
  worker = tmp_path / 'worker'
  base_python = getattr(sys, '_base_executable', sys.executable)
  subprocess.run([base_python, '-m', 'venv', str(worker)], check=True)
  installed = subprocess.run(
      [str(worker / 'bin' / 'pip'), 'install', '--quiet',
       '--disable-pip-version-check', str(sdist)],
      capture_output=True, text=True, timeout=1800)
  assert installed.returncode == 0, installed.stderr[-3000:]

  payload, notes = launcher_payload(tiny_demo / 'nsynth-test', 12)
  (tmp_path / 'payload').write_bytes(payload)
  env = {k: v for k, v in os.environ.items()
         if k not in ('PYTHONPATH', 'VIRTUAL_ENV')}
  ran = subprocess.run(
      [str(worker / 'bin' / 'python'), '-c', _WORKER,
       str(tmp_path / 'payload'), str(tmp_path / 'batches')],
      cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
  assert ran.returncode == 0, ran.stderr[-3000:]
  with open(tmp_path / 'batches', 'rb') as f:
    package_file, on_worker = pickle.load(f)
  assert package_file.startswith(str(worker)), package_file

  from apache_beam.internal import pickler

  from beam_pipelines.batches import FeaturizedBatch
  here_fn, here_notes = pickler.loads(payload)
  here_fn.setup()
  here = [b for b in here_fn.process(here_notes)
          if isinstance(b, FeaturizedBatch)]
  assert [n.note_str for b in on_worker for n in b.notes] == [
      n.note_str for b in here for n in b.notes]
  assert sum(len(b.notes) for b in here) > 0
  for theirs, ours in zip(on_worker, here):
    np.testing.assert_allclose(theirs.mfccs, ours.mfccs, atol=1e-4)
    assert set(theirs.representations) == set(ours.representations) != set()
    for key, values in ours.representations.items():
      np.testing.assert_allclose(theirs.representations[key], values,
                                 atol=1e-4)
