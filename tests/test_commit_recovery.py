"""A commit killed at any instant loses no dataset, and the next run recovers.

The job replaces the previous dataset in --output_dir by renames
(`beam_pipelines.commit`). These tests kill a process with SIGKILL before
each step of the commit in turn (writing the plan, every move aside, every
move in with the manifest last, every deletion afterwards), check that one
complete dataset, the old or the new, byte for byte, can be put together
from what is left, and rerun the same command, which says in one line what
it did with the interrupted commit and goes on.
"""

import logging
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from beam_pipelines import commit
from beam_pipelines import nsynth_tfrecords
from beam_pipelines import output
from nsynth_contracts import manifest as manifest_lib

# Every test runs the whole Beam job (and most kill and rerun it).
pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STAGING = '.staging-0123456789ab'

# Runs one commit in a process of its own, killing that process with
# SIGKILL just before its `kill_before`-th file-system step (rename, file
# removal or tree removal); prints the number of steps if it got through.
KILLED_COMMIT = textwrap.dedent('''
    import os, shutil, signal, sys
    from beam_pipelines import commit, output
    kill_before, staging, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    previous = output.previous_dataset(out, overwrite=True)
    steps = 0
    def step(function):
      def counted(*args, **kwargs):
        global steps
        if steps == kill_before:
          os.kill(os.getpid(), signal.SIGKILL)
        steps += 1
        return function(*args, **kwargs)
      return counted
    os.rename = step(os.rename)
    os.remove = step(os.remove)
    shutil.rmtree = step(shutil.rmtree)
    commit.commit(staging, out, previous)
    print(steps)
''')


def job_args(tiny_demo, out, *flags):
  # The commit moves files whatever they hold: MFCCs alone keep each of the
  # many killed and repeated jobs short.
  return [f'--input={tiny_demo / "nsynth-test"}', f'--output_dir={out}',
          '--embedding=none', *flags]


def contents(directory) -> dict[str, bytes]:
  """Every file below `directory` but the lock and staging: name -> bytes."""
  found = {}
  for root, dirs, names in os.walk(directory):
    dirs[:] = [d for d in dirs if not output.is_staging_name(d)]
    for name in names:
      path = os.path.join(root, name)
      relative = os.path.relpath(path, directory)
      if name != '.nsynth-run.lock':
        with open(path, 'rb') as f:
          found[relative] = f.read()
  return found


@pytest.fixture(scope='module')
def datasets(tiny_demo, tmp_path_factory):
  """The previous dataset (2 shards) and the new one (1 shard), as the job
  wrote them: {name: bytes} each."""
  root = tmp_path_factory.mktemp('datasets')
  nsynth_tfrecords.run(job_args(tiny_demo, root / 'old', '--num_shards=2'))
  nsynth_tfrecords.run(job_args(tiny_demo, root / 'new', '--num_shards=1',
                                '--nojit_compile'))
  old, new = contents(root / 'old'), contents(root / 'new')
  assert old[manifest_lib.MANIFEST_FILENAME] != new[
      manifest_lib.MANIFEST_FILENAME]
  return old, new


def lay_out(directory, old, new):
  """`directory` holding the old dataset, and the new one staged in it as
  the pipeline leaves it, ready to commit."""
  for name, data in old.items():
    os.makedirs(os.path.dirname(directory / name), exist_ok=True)
    (directory / name).write_bytes(data)
  staging = directory / STAGING
  staging.mkdir()
  for name, data in new.items():
    (staging / os.path.basename(name)).write_bytes(data)
  return staging


def kill_commit(kill_before: int, staging, out) -> subprocess.CompletedProcess:
  return subprocess.run(
      [sys.executable, '-c', KILLED_COMMIT, str(kill_before), str(staging),
       str(out)], cwd=REPO, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_a_commit_killed_at_every_step_keeps_one_dataset_and_is_recovered(
    tiny_demo, datasets, tmp_path, capsys):
  old, new = datasets
  kill_before, rolled = 0, []
  while True:
    out = tmp_path / f'killed-{kill_before}'
    staging = lay_out(out, old, new)
    killed = kill_commit(kill_before, staging, out)
    if killed.returncode == 0:   # No step left to kill before.
      assert int(killed.stdout) == kill_before
      assert contents(out) == new and not staging.exists()
      break
    assert killed.returncode == -9, killed.stderr

    # What is on disk now can be made into one complete dataset.
    planned = (staging / output.COMMIT_PLAN).exists()
    snapshot = tmp_path / f'snapshot-{kill_before}'
    shutil.copytree(out, snapshot, symlinks=True)
    said = commit.recover(str(snapshot))
    output.remove_stale_staging(str(snapshot))
    recovered = contents(snapshot)
    assert recovered in (old, new), f'killed before step {kill_before}'
    assert os.listdir(snapshot / 'dead_letters')
    assert not [n for n in os.listdir(snapshot) if output.is_staging_name(n)]
    if planned:
      assert recovered == new
      assert len(said) == 1 and 'rolled forward' in said[0]
    else:
      assert said == []   # Before the plan, or after it was removed.
    rolled.append('new' if recovered == new else 'old')

    # The same command again: it says what it did, and goes on.
    capsys.readouterr()
    job = nsynth_tfrecords.run(job_args(tiny_demo, out, '--overwrite',
                                        '--num_shards=1', '--nojit_compile'))
    assert contents(out) == new
    if planned:
      assert job.recovered and 'rolled forward' in job.recovered[0]
      # Said once.
      assert capsys.readouterr().err.splitlines().count(job.recovered[0]) == 1
    kill_before += 1
  # The plan is written before anything moves: from then on, forward.
  assert rolled[0] == 'old' and set(rolled[1:]) == {'new'}
  assert len(rolled) >= 1 + 3 + 3 + 3   # plan, aside, in, cleanup


@pytest.mark.slow
def test_the_killed_job_itself_is_recovered_by_the_same_command(
    tiny_demo, datasets, tmp_path):
  """The case that lost data: the job killed just after moving the first new
  file into place. Run as a user runs it, as the command."""
  old, new = datasets
  out = tmp_path / 'out'
  for name, data in old.items():
    os.makedirs(os.path.dirname(out / name), exist_ok=True)
    (out / name).write_bytes(data)
  command = [sys.executable, '-m', 'beam_pipelines.nsynth_tfrecords',
             *job_args(tiny_demo, out, '--overwrite', '--num_shards=1',
                       '--nojit_compile')]
  killed_after_first_move_in = textwrap.dedent(f'''
      import os, signal, sys
      from apache_beam.io.filesystems import FileSystems
      from beam_pipelines import nsynth_tfrecords
      rename = FileSystems.rename
      def rename_then_die(sources, destinations):
        rename(sources, destinations)
        if '.staging-' in sources[0] and '.replaced' not in sources[0] \\
            and '.commit.json' not in sources[0] \\
            and '.staging-' not in destinations[0]:
          os.kill(os.getpid(), signal.SIGKILL)
      FileSystems.rename = rename_then_die
      sys.argv = {command[2:]!r}
      nsynth_tfrecords.main()
  ''')
  killed = subprocess.run([sys.executable, '-c', killed_after_first_move_in],
                          cwd=REPO, capture_output=True, text=True,
                          timeout=300)
  assert killed.returncode == -9, killed.stderr
  # The old manifest sits aside, one new file is in place: the state that
  # made every later run refuse and the staging (the old data) be deleted.
  staged = [n for n in os.listdir(out) if output.is_staging_name(n)]
  assert len(staged) == 1
  assert (out / staged[0] / output.REPLACED_DIR / 'manifest.json').exists()
  assert not (out / 'manifest.json').exists()

  again = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                         timeout=300)
  assert again.returncode == 0, again.stderr
  said = [line for line in again.stderr.splitlines() if 'killed' in line]
  assert len(said) == 1 and 'rolled forward' in said[0]
  assert contents(out) == new
  assert not [n for n in os.listdir(out) if output.is_staging_name(n)]


def test_without_overwrite_the_rerun_completes_the_commit_then_refuses(
    tiny_demo, datasets, tmp_path):
  old, new = datasets
  out = tmp_path / 'out'
  staging = lay_out(out, old, new)
  assert kill_commit(5, staging, out).returncode == -9
  with pytest.raises(output.OutputDirNotEmptyError) as refused:
    nsynth_tfrecords.run(job_args(tiny_demo, out))
  message = str(refused.value)
  assert 'rolled forward' in message and '--overwrite' in message
  assert '\n' not in message
  assert contents(out) == new
  # The killed run's staging went, although this run refused.
  assert not [n for n in os.listdir(out) if output.is_staging_name(n)]


def test_a_commit_missing_a_staged_file_is_rolled_back(tiny_demo, datasets,
                                                       tmp_path):
  old, new = datasets
  out = tmp_path / 'out'
  staging = lay_out(out, old, new)
  assert kill_commit(3, staging, out).returncode == -9   # two moved aside
  shard = next(n for n in os.listdir(staging) if n.endswith('.tfrecord.gz'))
  (staging / shard).unlink()   # the new dataset can no longer be completed
  said = commit.recover(str(out))
  assert len(said) == 1 and 'rolled back' in said[0]
  assert contents(out) == old


def test_failed_runs_never_discard_a_staging_directory_mid_commit(
    tiny_demo, datasets, tmp_path):
  old, new = datasets
  out = tmp_path / 'out'
  staging = lay_out(out, old, new)
  assert kill_commit(4, staging, out).returncode == -9
  output.discard(str(staging))
  output.remove_stale_staging(str(out))
  assert staging.exists()
  assert commit.recover(str(out))
  assert contents(out) == new


def test_a_previous_dataset_left_aside_without_a_plan_is_put_back(
    datasets, tmp_path):
  """What versions of the job that wrote no plan left when killed."""
  old, new = datasets
  out = tmp_path / 'out'
  staging = lay_out(out, old, new)
  aside = staging / output.REPLACED_DIR
  for name in old:
    os.makedirs(os.path.dirname(aside / name), exist_ok=True)
    os.rename(out / name, aside / name)
  said = commit.recover(str(out))
  assert len(said) == 1 and 'put back' in said[0]
  assert contents(out) == old
  assert not staging.exists()


def test_a_move_that_fails_is_undone_in_the_same_run(datasets, tmp_path,
                                                     monkeypatch):
  old, new = datasets
  out = tmp_path / 'out'
  staging = lay_out(out, old, new)
  moves = []
  real_rename = os.rename

  def rename_failing_the_first_move_in(source, destination):
    if output.REPLACED_DIR not in source and STAGING in source and (
        STAGING not in destination):
      moves.append(source)
      raise OSError(28, 'No space left on device')
    real_rename(source, destination)

  monkeypatch.setattr(os, 'rename', rename_failing_the_first_move_in)
  previous = output.previous_dataset(str(out), overwrite=True)
  with pytest.raises(output.OutputDirError, match='the commit was undone'):
    commit.commit(str(staging), str(out), previous)
  assert moves and contents(out) == old
  assert not os.path.exists(staging / output.COMMIT_PLAN)


def test_a_full_disk_is_one_line_naming_the_directory(tiny_demo, datasets,
                                                      tmp_path, monkeypatch,
                                                      caplog):
  from beam_pipelines import tfrecord_sink
  old, _ = datasets
  out = tmp_path / 'out'
  for name, data in old.items():
    os.makedirs(os.path.dirname(out / name), exist_ok=True)
    (out / name).write_bytes(data)

  def disk_full(record):
    raise OSError(28, 'No space left on device')

  monkeypatch.setattr(tfrecord_sink, 'tfrecord_frame', disk_full)
  with pytest.raises(output.OutputDirError) as error:
    nsynth_tfrecords.run(job_args(tiny_demo, out, '--overwrite',
                                  '--nojit_compile'))
  message = str(error.value)
  assert message.startswith(f'--output_dir {out}: the disk is full')
  # Beam logs a worker's error with its traceback before re-raising it; the
  # job's line says it all.
  assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [
      r.getMessage()[:200] for r in caplog.records]
  assert '\n' not in message and 'Traceback' not in message
  assert contents(out) == old
  assert not [n for n in os.listdir(out) if output.is_staging_name(n)]

