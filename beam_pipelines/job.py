"""Running the Beam job: inputs checked, then a new version written.

`run_job(JobConfig)` is the library entry; `beam_pipelines.nsynth_tfrecords`
is its command. Every input is checked before any work; the pipeline writes
into a new version directory of --output_dir, the accounting is checked
against the notes read, and only then is the version's manifest written,
which marks it complete (`beam_pipelines.versioned_output`).
"""

import contextlib
import dataclasses
import functools
import logging
import posixpath
from collections.abc import Sequence
from typing import TextIO

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.options.pipeline_options import TestOptions

from beam_pipelines import finished_dataset
from beam_pipelines import gcs
from beam_pipelines import local_runner
from beam_pipelines import output
from beam_pipelines import pipeline as pipeline_lib
from beam_pipelines import progress
from beam_pipelines import versioned_output
from beam_pipelines.inputs import InputSizes
from beam_pipelines.inputs import JobInputError
from beam_pipelines.inputs import check_file_systems
from beam_pipelines.inputs import check_inputs
from beam_pipelines.inputs import check_precision
from beam_pipelines.job_config import JobConfig
from nsynth_common import cli
from nsynth_common import disk_space
from nsynth_contracts import manifest as manifest_lib
from nsynth_contracts import outcomes
from nsynth_contracts import representation


@dataclasses.dataclass(frozen=True)
class DryRun:
  """A job built and translated for its runner (`--dry_run=True`, Beam's own
  switch), never submitted: no audio decoded, nothing written."""
  runner: str
  inputs: 'InputSizes'


@dataclasses.dataclass(frozen=True)
class JobResult:
  manifest: manifest_lib.Manifest
  counters: dict[str, int]   # Beam counters of the 'nsynth' namespace
  dataset_dir: str           # the version written: <output_dir>/<version>
  inputs: InputSizes


def _counters(result) -> dict[str, int]:
  query = result.metrics().query(
      MetricsFilter().with_namespace(outcomes.METRICS_NAMESPACE))
  totals = {}
  for counter in query['counters']:  # One result per step that counts it.
    name = counter.key.metric.name
    totals[name] = totals.get(name, 0) + counter.committed
  return totals


def run_job(config: JobConfig, beam_args: Sequence[str] = (),
            report: TextIO | None = None,
            show_progress: bool = True) -> JobResult | DryRun:
  """Checks the paths and the output directory (cheap), the inputs and the
  weights (seconds on NSynth), then writes a new version of the dataset.

  Args:
    report: where to say which stage the job is in, and, on the local
      engine and with `show_progress`, how far featurising is (None:
      nowhere).

  Raises:
    JobInputError: an input directory or examples.json is unusable.
    output.OutputDirError: the output directory cannot be used (it holds a
      dataset and overwrite is off; an older manifest cannot be read; not
      writable).
    finished_dataset.NothingWrittenError: every note was dead-lettered.
  """
  say = functools.partial(print, file=report, flush=True) if report else (
      lambda *_: None)
  gcs.bound_retries()
  options = PipelineOptions(list(beam_args))
  dry_run = options.view_as(TestOptions).dry_run
  # The cheap checks first, so that a wrong path is said at once, before
  # the seconds that reading inputs and weights may take.
  check_file_systems(config)
  if not dry_run:   # A dry run neither reads nor writes the output.
    versioned_output.check(config.output_dir, config.overwrite)
  with progress.said_if_slow(
      say, f'Reading examples.json of {len(config.inputs)} split '
      f'{"directory" if len(config.inputs) == 1 else "directories"}'):
    sizes = check_inputs(config)
  if local_runner.local_runner_for(options):
    # The workers are this machine: a precision it cannot run is said now,
    # not as a worker's traceback.
    check_precision(config)
  with progress.said_if_slow(say, 'Reading and checking the weights of ' + (
      ', '.join(r.describe() for r in config.representations))):
    representations = _read_representations(config)
  if dry_run:
    return _dry_run(config, options, representations, sizes)
  return _write_dataset(config, beam_args, representations, sizes, report,
                        show_progress, say)


def _write_dataset(config: JobConfig, beam_args: Sequence[str],
                   representations: tuple[representation.WithWeights, ...],
                   sizes: InputSizes, report: TextIO | None,
                   show_progress: bool, say) -> JobResult:
  """run_job's work once the inputs are checked."""
  version = versioned_output.start(config.output_dir, config.overwrite)
  try:   # From here on, however the run ends early, its version goes.
    unfinished = version.unfinished_line()
    if unfinished:
      say(unfinished)
    say(f'{sizes.notes} notes listed, {sizes.to_featurize} to featurize' +
        (f'; {sizes.recordings} recordings to cut into {sizes.windows} '
         f'windows' if sizes.recordings else '') +
        f'; writing {version.directory}')
    result = _run_pipeline(config, beam_args, version.directory,
                           representations, sizes, report, show_progress)
    say('Checking the accounting and writing the manifest')
    manifest = finished_dataset.complete_manifest(version.directory)
    finished_dataset.check_accounting(manifest, sizes.notes,
                                      sizes.to_featurize, sizes.recordings)
    finished_dataset.write_manifest(version.directory, manifest)
  except BaseException as e:
    left = versioned_output.abandon(version)
    if isinstance(e, Exception):   # Beam re-raises a worker's error as it came.
      problem = versioned_output.storage_failure(e, version, left)
      if problem:
        raise problem from None
    raise
  for line in versioned_output.replace_older(version):
    say(line)
  return JobResult(manifest, _counters(result), version.directory, sizes)


def _read_representations(config: JobConfig
                          ) -> tuple[representation.WithWeights, ...]:
  """Each representation with its weights, read and checked once here so
  that they travel with the pipeline (workers need no wheel), and so that
  damaged weights stop the job before any work or output.

  Raises:
    JobInputError: weights missing, unreadable, or not the network's (it
      names them, and says how to write records without them).
  """
  loaded = []
  for heard in config.representations:
    try:
      loaded.append(representation.WithWeights.read(heard))
    except representation.RepresentationError as e:
      raise JobInputError(f'--embedding={heard.describe()}: {e} (or pass '
                          f'--embedding=none)') from None
  return tuple(loaded)


def _dry_run(config: JobConfig, options: PipelineOptions,
             representations: tuple[representation.WithWeights, ...],
             sizes: InputSizes) -> DryRun:
  """The pipeline built and handed to its runner, which translates it and
  returns without running it (the output directory is neither created nor
  written)."""
  if local_runner.local_runner_for(options) is not None:
    raise JobInputError(
        '--dry_run=True builds a job for a remote runner (--runner='
        'DataflowRunner, ...) without submitting it; the local engine has no '
        'dry run')
  try:
    pipeline = beam.Pipeline(options=options)
    pipeline_lib.build_pipeline(pipeline, config,
                                posixpath.join(config.output_dir, '.dry-run'),
                                representations, None)
    pipeline.run().wait_until_finish()
  except ValueError as e:   # The runner's own checks of its options.
    words = ' '.join(str(e).split())
    raise JobInputError(f'the {options.view_as(StandardOptions).runner} '
                        f'options: {words}') from None
  return DryRun(str(options.view_as(StandardOptions).runner or
                    'DirectRunner'), sizes)


def _run_pipeline(config: JobConfig, beam_args: Sequence[str],
                  dataset_dir: str,
                  representations: tuple[representation.WithWeights, ...],
                  sizes: InputSizes, report: TextIO | None,
                  show_progress: bool):
  options = PipelineOptions(list(beam_args))
  runner = local_runner.local_runner_for(options)
  if report and runner is None:
    print(f'Running on {options.view_as(StandardOptions).runner}: its own '
          f'interface shows the job\'s progress', file=report, flush=True)
  with (output.pattern_free_path(dataset_dir) as pipeline_dir,
        progress.shown(sizes.to_featurize + sizes.windows, 'Featurizing',
                       local=(runner is not None and report is not None
                              and show_progress), stream=report,
                       # Notes and windows are both 4 s clips.
                       unit=' clips' if sizes.windows else ' notes'
                       ) as progress_address):
    pipeline = beam.Pipeline(runner=runner, options=options)
    pipeline_lib.build_pipeline(pipeline, config, pipeline_dir,
                                representations, progress_address)
    with _said_in_one_line_not_logged():
      result = pipeline.run()
      result.wait_until_finish()
  return result


# Where Beam logs a worker's exception, with its traceback, before the
# launcher re-raises it: the step that failed, and the worker that ran it.
_BEAM_WORKER_ERROR_LOGGERS = ('apache_beam.runners.common',
                              'apache_beam.runners.worker.sdk_worker')


def _said_in_one_line(error: BaseException) -> bool:
  """A full disk, storage that stopped answering, Ctrl-C: each ends the job
  with one line of its own."""
  return (disk_space.is_disk_full(error) or gcs.unavailable(error) or
          cli.interrupted(error))


@contextlib.contextmanager
def _said_in_one_line_not_logged():
  """Inside, Beam does not log the traceback of an error the job reports in
  one line (other errors keep Beam's log, which names the step). Beam's
  multi_threading workers also print it, unlogged, which this cannot stop."""
  def not_said(record: logging.LogRecord) -> bool:
    error = record.exc_info[1] if record.exc_info else None
    return not ((error is not None and _said_in_one_line(error)) or
                _said_in_one_line(RuntimeError(record.getMessage())))

  with cli.logs_filtered(not_said, _BEAM_WORKER_ERROR_LOGGERS):
    yield
