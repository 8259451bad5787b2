"""The Beam job's inputs, checked before any work or output.

`check_inputs` reads every examples.json, labels.json and path the job was
given, and says what is wrong in one line naming the flag and the file;
`check_precision` that the workers, when they are this machine, can compute
in the precision asked for.
"""

import contextlib
import dataclasses
import math
import posixpath

import soundfile
from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems

from beam_pipelines import gcs
from beam_pipelines import output
from beam_pipelines import reading
from beam_pipelines import selection
from beam_pipelines import tfds_metadata
from beam_pipelines.job_config import JobConfig
from nsynth_contracts import examples_json
from nsynth_contracts import feature_params
from nsynth_contracts import file_safety
from nsynth_contracts import labelled_recordings
from nsynth_contracts import manifest as manifest_lib
from nsynth_contracts import outcomes
from nsynth_contracts import precision
from nsynth_contracts import window_params


class JobInputError(ValueError):
  """The job cannot start: the message names the input at fault."""


@dataclasses.dataclass(frozen=True)
class InputSizes:
  """What the inputs list: every one must be accounted for."""
  notes: int          # entries of the examples.json files
  recordings: int     # entries of the --recordings' labels.json files
  # Of the notes, those the filters keep, and the windows the kept
  # recordings are cut into: the 4 s clips the progress display counts to.
  to_featurize: int = 0
  windows: int = 0


def check_inputs(config: JobConfig) -> InputSizes:
  """Fails fast, naming the input, before any pipeline work or output.

  Raises:
    JobInputError: naming the directory, file or flag at fault.
  """
  if config.compression == manifest_lib.NO_COMPRESSION:
    try:
      tfds_metadata.check_available()
    except tfds_metadata.TfdsMissingError as e:
      raise JobInputError(str(e)) from None
  check_file_systems(config)
  try:
    return _input_sizes(config)
  except Exception as e:
    if not gcs.unavailable(e):
      raise
    raise JobInputError(f'the storage of the inputs did not answer '
                        f'({gcs.describe(e)}); nothing was written: run the '
                        f'job again once it answers') from None


def _input_sizes(config: JobConfig) -> InputSizes:
  """check_inputs' reading of every input."""
  notes, listed, windows, libraries, valid = 0, 0, 0, set(), []
  for split_dir, split in config.inputs:
    if not FileSystems.exists(posixpath.join(split_dir,
                                             examples_json.EXAMPLES_JSON)):
      what = ('does not exist' if not FileSystems.exists(split_dir)
              else f'has no {examples_json.EXAMPLES_JSON}')
      raise JobInputError(f'Input directory {split_dir} {what}')
    try:
      entries = reading.read_examples_json(split_dir)
    except examples_json.ExamplesJsonError as e:
      raise JobInputError(str(e)) from e
    notes += len(entries)
    libraries |= {_library_of(entry.value) for entry in entries}
    valid += _valid_notes(entries, split_dir, split)
  for directory, _ in config.recordings:
    try:
      listed += len(labelled_recordings.read_labels(
          directory, output.files_for(directory)))
      windows += _windows_to_featurize(
          directory, config.kept_sources, config.vocabulary.families,
          config.windows, config.params)
    except labelled_recordings.RecordingsError as e:
      raise JobInputError(str(e)) from None
  if config.holdout_library and config.holdout_library not in libraries:
    named = sorted(libraries - {''}) or 'none'
    raise JobInputError(
        f'--holdout_library={config.holdout_library} is not a library of the '
        f'inputs; their examples.json name {named}')
  return InputSizes(notes, listed,
                    selection.notes_to_featurize(valid, config), windows)


def _windows_to_featurize(directory: str, kept_sources, families,
                          windows: window_params.WindowParams,
                          params: feature_params.FeatureParams) -> int:
  """How many windows the kept recordings of `directory` are cut into, from
  their headers (what the progress display counts to; nothing is decoded).
  Each is opened as the job opens it (file_safety: a regular file inside the
  directory, never a FIFO to wait on); one whose header cannot be read
  counts one window: the job dead-letters it."""
  total = 0
  for item in labelled_recordings.recordings_of(
      directory, output.files_for(directory)):
    if isinstance(item, outcomes.DeadLetter) or (
        item.source not in kept_sources or item.family not in families):
      continue
    samples = params.clip_samples
    with contextlib.suppress(Exception):
      with file_safety.open_local_file(item.path, directory,
                                       file_safety.MAX_RECORDING_BYTES) as f:
        info = soundfile.info(f)
      samples = math.ceil(info.frames * params.sample_rate_hz /
                          info.samplerate)
    total += windows.num_windows(samples, params)
  return total


def _valid_notes(entries, split_dir: str, split: str
                 ) -> list[examples_json.Note]:
  """The entries that are notes (the others become dead letters)."""
  notes = []
  for entry in entries:
    if examples_json.entry_problem(entry) is None:
      with contextlib.suppress(Exception):  # Dead-lettered by the job.
        notes.append(examples_json.note_from_entry(
            entry.key, examples_json.as_plain_json(entry.value), split_dir,
            split))
  return notes


def check_file_systems(config: JobConfig) -> None:
  """Refuses a path whose file system this installation cannot reach: Beam
  knows a scheme only with its extra installed (gs:// comes with
  apache-beam[gcp], which the project requires; hdfs:// needs [hadoop]), and
  says so in a page.

  Raises:
    JobInputError: naming the flag and the path.
  """
  for flag, path in ([('--input', d) for d, _ in config.inputs] +
                     [('--recordings', d) for d, _ in config.recordings] +
                     [('--output_dir', config.output_dir)]):
    try:
      FileSystems.get_filesystem(path)
    except (ValueError, BeamIOError):
      scheme = FileSystems.get_scheme(path)
      raise JobInputError(
          f'{flag} {path}: this installation has no file system for '
          f'{scheme}:// paths (Beam reads them only with its extra for them '
          f'installed)') from None


def _library_of(entry) -> str:
  library = examples_json.member(entry, 'library')
  return library if isinstance(library, str) else ''


def check_precision(config: JobConfig) -> None:
  """Raises JobInputError if this machine cannot compute the records'
  representations in the precision asked for."""
  if not config.representations:
    return
  try:
    precision.resolve(config.precision)
  except precision.PrecisionError as e:
    raise JobInputError(f'--precision={config.precision}: {e}') from None
