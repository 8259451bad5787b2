"""Long work says how far it is: the Beam job's progress, counted by its
workers and shown by its launcher."""

import contextlib
import io
import re
import time

import pytest

from beam_pipelines import featurize
from beam_pipelines import nsynth_tfrecords
from beam_pipelines import progress

# "Featurizing:  40% 120/300 [00:02<00:03, 54.55 notes/s]": tqdm's figures.
PROGRESS_LINE = re.compile(
    r'Featurizing: +\d+% (\d+)/(\d+) \[\d\d:\d\d<(\d\d:\d\d|\?), +'
    r'([\d.]+|\?) notes/s\]')


def test_workers_totals_add_up_and_a_lost_datagram_loses_nothing():
  with progress.Display(100, 'Featurizing', stream=io.StringIO()) as shown:
    first = progress.WorkerCounter(shown.address)
    second = progress.WorkerCounter(shown.address)
    first.add(10)       # sent: the first add of a counter always is
    first.add(5)        # within half a second: not sent yet
    second.add(7)
    first.send()        # 15, which carries the 5 as well
    deadline = time.monotonic() + 5
    while shown.done != 22 and time.monotonic() < deadline:
      time.sleep(0.01)
    assert shown.done == 22


def test_a_stage_says_what_it_does_only_when_it_is_slow():
  said = []
  with progress.said_if_slow(said.append, 'quick', after_seconds=5):
    pass
  with progress.said_if_slow(said.append, 'slow', after_seconds=0.05):
    deadline = time.monotonic() + 60   # however busy the machine
    while not said and time.monotonic() < deadline:
      time.sleep(0.01)
  assert said == ['slow']


def test_copies_of_one_counter_are_workers_of_their_own():
  """Beam unpickles a DoFn, and its counter, once per worker thread or
  process: their totals add up, they do not overwrite each other."""
  import pickle
  with progress.Display(100, 'Featurizing', stream=io.StringIO()) as shown:
    original = progress.WorkerCounter(shown.address)
    original.add(1)
    copies = [pickle.loads(pickle.dumps(original)) for _ in range(3)]
    for copy in copies:
      copy.add(4)
    deadline = time.monotonic() + 5
    while shown.done != 13 and time.monotonic() < deadline:
      time.sleep(0.01)
    assert shown.done == 13


def test_nothing_is_sent_or_shown_off_the_local_engine():
  with progress.shown(100, 'Featurizing', local=False) as address:
    assert address is None
  counter = progress.WorkerCounter(None)
  counter.add(3)   # no socket, no error
  counter.send()


@pytest.mark.slow
def job_output(split_dir, output_dir, *beam_args):
  """The Beam job on one split, its stdout and stderr captured (not a
  terminal): (the job, their lines)."""
  output = io.StringIO()
  with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
    job = nsynth_tfrecords.run([
        f'--input={split_dir}', f'--output_dir={output_dir}',
        '--embedding=none', '--runner=DirectRunner', *beam_args])
  return job, output.getvalue().splitlines()


def test_the_beam_job_shows_progress_lines_off_a_terminal(
    tiny_demo, tmp_path, monkeypatch):
  """Output captured (not a terminal), notes slowed so the run spans
  several reporting periods: lines with growing counts, a rate and a time
  left, between the stage lines and before the accounting table."""
  monkeypatch.setattr(progress, 'PLAIN_LINE_SECONDS', 0.5)
  featurize_all = featurize.Featurizer.featurize_all

  def slowly(self, rows):
    time.sleep(0.3)
    yield from featurize_all(self, rows)

  monkeypatch.setattr(featurize.Featurizer, 'featurize_all', slowly)
  job, lines = job_output(tiny_demo / 'nsynth-train', tmp_path / 'out',
                          '--batch_size=8', '--direct_running_mode=in_memory')
  to_featurize = job.inputs.to_featurize
  assert 0 < to_featurize < job.inputs.notes   # the filters left some out
  assert lines[0] == (f'{job.inputs.notes} notes listed, {to_featurize} to '
                      f'featurize; writing {job.dataset_dir}')
  shown = [(i, PROGRESS_LINE.fullmatch(line)) for i, line in enumerate(lines)]
  shown = [(i, m) for i, m in shown if m]
  assert len(shown) >= 3
  counts = [int(m.group(1)) for _, m in shown]
  assert counts == sorted(counts) and counts[-1] > counts[0]
  assert all(int(m.group(2)) == to_featurize for _, m in shown)
  later = [m for _, m in shown if int(m.group(1)) > 0]
  assert later and all(m.group(3) != '?' and float(m.group(4)) > 0
                       for m in later)
  committing = lines.index('Checking the accounting and writing the '
                           'manifest')
  table = next(i for i, line in enumerate(lines)
               if line.startswith('NSynth -> TFRecords'))
  assert max(i for i, _ in shown) < committing < table


def test_a_finished_job_ends_on_a_line_of_its_whole_count(tiny_demo,
                                                          tmp_path,
                                                          monkeypatch):
  """However the last reporting period fell, the last line counts every
  clip: here no period ends during the run, and that line is the only one."""
  monkeypatch.setattr(progress, 'PLAIN_LINE_SECONDS', 3600)
  job, lines = job_output(tiny_demo / 'nsynth-valid', tmp_path / 'out',
                          '--direct_running_mode=multi_threading',
                          '--direct_num_workers=2')
  shown = [PROGRESS_LINE.fullmatch(line) for line in lines]
  shown = [m for m in shown if m]
  assert [(int(m.group(1)), int(m.group(2))) for m in shown] == [
      (job.inputs.to_featurize, job.inputs.to_featurize)]


@pytest.mark.slow
def test_training_shows_progress_lines_within_an_epoch_off_a_terminal(
    tiny_tfrecords, tmp_path, monkeypatch, capsys):
  """One epoch, output captured (not a terminal), lines every 20 ms: the
  step grows, with examples/s and the epoch's time left, then Keras's line
  for the epoch."""
  from trainer import fit_progress
  from trainer import train
  monkeypatch.setattr(fit_progress, 'LINE_SECONDS', 0.02)
  train.train(train.TrainConfig(
      data_dir=str(tiny_tfrecords), job_dir=str(tmp_path / 'job'),
      model='stats_mlp', epochs=1, batch_size=4, seed=1))
  lines = capsys.readouterr().out.splitlines()
  line = re.compile(r'Epoch 1/1: step (\d+)/(\d+), (\d+) examples/s, '
                    r'(\d\d:\d\d) left in this epoch')
  shown = [m for m in map(line.fullmatch, lines) if m]
  assert len(shown) >= 3
  steps = [int(m.group(1)) for m in shown]
  assert steps == sorted(steps) and steps[-1] > steps[0]
  assert all(int(m.group(2)) == int(shown[0].group(2)) > steps[-1] - 1
             for m in shown)
  assert all(int(m.group(3)) > 0 for m in shown)
  keras_line = next(i for i, text in enumerate(lines)
                    if re.match(r'\d+/\d+ - \d+s', text))
  assert lines.index(shown[-1].group(0)) < keras_line
