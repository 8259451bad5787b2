"""The engine that runs the job when the DirectRunner is asked for.

Since Beam 2.63 the DirectRunner first tries Prism, a Go binary it downloads
on first use; offline that costs a failed download before it falls back, and
Prism ignores --direct_num_workers. The FnApiRunner is what the DirectRunner
falls back to, and it honours --direct_num_workers and
--direct_running_mode. Other runners (Dataflow, Flink, Spark, Prism) are left
to Beam.

With --direct_running_mode=multi_threading the FnApiRunner's workers run in
this process and send their output to the runner over gRPC, through a buffer
that a timer thread also flushes once a second. In Beam 2.77 that timer
flushes without the lock the writing thread would need: what is written
between the flush's read of the buffer and its clearing is dropped, and a
flush can cut an element in two. Any bundle that writes for more than a
second is exposed; at NSynth's size the reading stage alone lost about 1,400
of 289,205 entries on its way to the shuffle after it, and the full job ran
out of memory. A batch job needs no timed flush (the buffer is flushed by
size and at the end of each bundle), so `LocalRunner` sets the timer beyond
any run while it runs a pipeline.
"""

import contextlib
import threading
from collections.abc import Iterator

from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.runners.portability.fn_api_runner import fn_runner
from apache_beam.runners.portability.fn_api_runner import worker_handlers

# 30 days, in milliseconds: longer than any local run, and well inside what
# threading's timed waits accept (threading.TIMEOUT_MAX).
NO_TIMED_FLUSH_MS = 30 * 24 * 3600 * 1000

_flush_setting_lock = threading.Lock()


@contextlib.contextmanager
def no_timed_flush() -> Iterator[None]:
  """While inside, in-process gRPC workers created by the FnApiRunner flush
  their output by size and at the end of each bundle only."""
  with _flush_setting_lock:
    before = worker_handlers.DATA_BUFFER_TIME_LIMIT_MS
    worker_handlers.DATA_BUFFER_TIME_LIMIT_MS = NO_TIMED_FLUSH_MS
    try:
      yield
    finally:
      worker_handlers.DATA_BUFFER_TIME_LIMIT_MS = before


class LocalRunner(fn_runner.FnApiRunner):
  """The FnApiRunner, whose multi_threading workers lose no output."""

  def run_pipeline(self, pipeline, options):
    # The FnApiRunner runs the whole pipeline before it returns, so every
    # worker it starts is started inside.
    with no_timed_flush():
      return super().run_pipeline(pipeline, options)


def local_runner_for(options: PipelineOptions) -> LocalRunner | None:
  """A LocalRunner when the options ask for the DirectRunner (or for no
  runner), else None: Beam's choice."""
  runner = options.view_as(StandardOptions).runner
  if runner in (None, 'DirectRunner', 'direct'):
    return LocalRunner()
  return None
