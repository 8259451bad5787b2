"""The job's local engine keeps every element, however long a bundle runs.

Beam 2.77's FnApiRunner, in multi_threading mode, flushes each in-process
worker's output once a second from a timer thread without the writer's lock,
and drops what is written meanwhile. At NSynth's size the reading stage lost
about 1,400 of 289,205 entries on their way to the shuffle after it. These
tests write for several seconds in one bundle through a shuffle, as the
reading stage does.
"""

import sys

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability.fn_api_runner import worker_handlers
from apache_beam.testing.util import assert_that
from apache_beam.testing.util import equal_to

from beam_pipelines import local_runner

# One bundle writing for a few seconds: several timed flushes. With threads
# switching often (below), each of them dropped elements before the fix:
# FnApiRunner itself failed this test 5 times out of 5.
ELEMENTS = 150_000
ENTRY_CHARS = 330
MULTI_THREADING = ['--runner=DirectRunner', '--direct_num_workers=2',
                   '--direct_running_mode=multi_threading']


@pytest.fixture
def threads_switching_often():
  """Python switches threads every 10 µs instead of 5 ms, so that the flush
  thread is interrupted inside a flush as it is under a loaded machine."""
  before = sys.getswitchinterval()
  sys.setswitchinterval(1e-5)
  yield
  sys.setswitchinterval(before)


def _numbers(count: int):
  # As long as an examples.json entry: a second of them fills megabytes of
  # buffer, so that a flush takes long enough to be overtaken.
  for number in range(count):
    yield f'{number:0{ENTRY_CHARS}d}'


def _count_after_a_long_bundle(runner, options) -> None:
  with beam.Pipeline(runner=runner, options=options) as pipeline:
    counted = (pipeline
               | beam.Create([ELEMENTS])
               | 'OneLongBundle' >> beam.FlatMap(_numbers)
               | beam.Reshuffle()
               | beam.combiners.Count.Globally())
    assert_that(counted, equal_to([ELEMENTS]))


@pytest.mark.slow
def test_multi_threading_loses_nothing_from_a_long_bundle(
    threads_switching_often):
  options = PipelineOptions(MULTI_THREADING)
  _count_after_a_long_bundle(local_runner.local_runner_for(options), options)


def test_the_timed_flush_is_back_after_the_run():
  options = PipelineOptions(MULTI_THREADING)
  before = worker_handlers.DATA_BUFFER_TIME_LIMIT_MS
  with beam.Pipeline(runner=local_runner.local_runner_for(options),
                     options=options) as pipeline:
    _ = pipeline | beam.Create([1])
  assert worker_handlers.DATA_BUFFER_TIME_LIMIT_MS == before


@pytest.mark.parametrize('runner', [None, 'DirectRunner', 'direct'])
def test_the_direct_runner_is_the_local_runner(runner):
  args = [f'--runner={runner}'] if runner else []
  assert isinstance(local_runner.local_runner_for(PipelineOptions(args)),
                    local_runner.LocalRunner)


def test_other_runners_are_left_to_beam():
  assert local_runner.local_runner_for(
      PipelineOptions(['--runner=DataflowRunner'])) is None
