"""Recordings of any length as training examples: one per 4-second window.

With --recordings, the job also reads directories of recordings (WAV, FLAC,
OGG or MP3, any rate, mono or stereo; nsynth_contracts.audio_decoding) beside a
JSON of labels, the layout demo_data.phrases writes:

  <dir>/labels.json   {"<file>": {"family": "guitar", "source": "acoustic",
                                  "instrument_str": "...", "library": "..."}}
  <dir>/audio/<file>

A directory named `<anything>-<split>` (phrases-train) feeds that split.
Each recording is cut by nsynth_contracts.windows, the function the serving
signatures use, and every sounding window becomes a record like a note's
(note_str `<file>@<start>s`, pitch and velocity 0). Recordings are
accounted for apart from notes: windowed, filtered or dead-lettered, each
once; the windows written and skipped as silent are counted too.
"""

import dataclasses
import os
import posixpath
import re
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from beam_pipelines import examples_json
from beam_pipelines import transforms
from nsynth_contracts import audio_decoding
from nsynth_contracts import audio_limits
from nsynth_contracts import labels
from nsynth_contracts import windows as windows_lib

LABELS_JSON = 'labels.json'
AUDIO_DIR = 'audio'
RECORDING = 'recording'


class RecordingsError(ValueError):
  """A recordings directory as a whole is unusable; the message names it."""


def split_of(directory: str) -> str:
  """`.../phrases-valid` -> `valid`.

  Raises:
    RecordingsError: naming the directory when it names no split.
  """
  name = os.path.basename(directory.rstrip('/')).rsplit('-', 1)[-1].lower()
  if not re.fullmatch(r'[a-z][a-z0-9_]*', name):
    raise RecordingsError(f'Cannot name a split after directory '
                          f'{directory!r}: expected e.g. phrases-train')
  return name


@dataclasses.dataclass(frozen=True)
class Recording:
  name: str            # its file name, the key in labels.json
  path: str
  split: str
  family: str
  source: str
  instrument_str: str
  library: str = ''


def read_labels(directory: str) -> list[examples_json.RawEntry]:
  """Every entry of a directory's labels.json, duplicates included (parsed
  as examples.json is, with the same per-entry checks).

  Raises:
    RecordingsError: naming the file when it is missing or malformed.
  """
  path = posixpath.join(directory, LABELS_JSON)
  try:
    with FileSystems.open(path) as f:
      text = f.read()
  except Exception as e:  # pylint: disable=broad-except
    raise RecordingsError(f'Cannot read {path}: {e}') from None
  try:
    return examples_json.parse_examples_json(path, text)
  except examples_json.ExamplesJsonError as e:
    raise RecordingsError(str(e).replace('keyed by note_str',
                                         'keyed by file name')) from None


def recording_from_label(name: str, entry: Any, directory: str,
                         split: str) -> Recording:
  """Raises examples_json.EntryError naming the field at fault."""
  if not isinstance(entry, dict):
    raise examples_json.EntryError('the label is not an object')
  for field in ('family', 'source'):
    if not isinstance(entry.get(field), str):
      raise examples_json.EntryError(f'missing or mistyped field {field!r}')
  if entry['family'] not in labels.NSYNTH_FAMILIES:
    raise examples_json.EntryError(f'unknown family {entry["family"]!r}')
  if entry['source'] not in labels.NSYNTH_SOURCES:
    raise examples_json.EntryError(f'unknown source {entry["source"]!r}')
  problem = examples_json.note_str_problem(name)
  suffixes = audio_decoding.RECORDING_SUFFIXES
  if problem or not name.lower().endswith(suffixes):
    raise examples_json.EntryError(
        problem or f'{name!r} is not a {"/".join(suffixes)} file name')
  return Recording(
      name=name, path=posixpath.join(directory, AUDIO_DIR, name), split=split,
      family=entry['family'], source=entry['source'],
      instrument_str=str(entry.get('instrument_str') or
                         os.path.splitext(name)[0]),
      library=str(entry.get('library', '')))


def _recordings_of(directory: str) -> Iterator[Recording]:
  split = split_of(directory)
  entries = read_labels(directory)
  transforms._count('recordings_read', len(entries))  # pylint: disable=protected-access
  for entry in entries:
    problem = examples_json.entry_problem(entry)
    if problem:
      kind, reason = problem
    else:
      try:
        yield recording_from_label(entry.key, examples_json.as_plain_json(
            entry.value), directory, split)
        continue
      except Exception as e:  # pylint: disable=broad-except
        kind = examples_json.INVALID_METADATA
        reason = (str(e) if isinstance(e, examples_json.EntryError)
                  else f'cannot read the label ({type(e).__name__})')
    yield beam.pvalue.TaggedOutput(transforms.DEAD_LETTERS,
                                   transforms.DeadLetter(
        examples_json.printable(str(entry.key)),
        posixpath.join(directory, LABELS_JSON), split, kind, reason,
        what=RECORDING))


def filter_recording(recording: Recording, kept_sources, vocabulary
                     ) -> Iterator[Recording]:
  """The recording, or a tagged Filtered (the notes' filters, applied)."""
  reason = ('source' if recording.source not in kept_sources else
            'family' if recording.family not in vocabulary.families else None)
  if reason:
    yield beam.pvalue.TaggedOutput(transforms.FILTERED, transforms.Filtered(
        _as_note(recording, 0.0), reason, what=RECORDING))
  else:
    yield recording


def _as_note(recording: Recording, start_seconds: float
             ) -> examples_json.Note:
  return examples_json.Note(
      note_str=f'{recording.name}@{start_seconds:g}s', instrument=0,
      instrument_str=recording.instrument_str, pitch=0, velocity=0,
      family=recording.family, source=recording.source,
      audio_path=recording.path, split=recording.split,
      library=recording.library)


class _WindowRecordingFn(transforms._FeaturizeBatchFn):  # pylint: disable=protected-access
  """Decodes one recording, cuts it into windows, computes their MFCCs.

  Main output: FeaturizedBatches of windows (and of their augmented copies,
  train split only); tagged DEAD_LETTERS: the recording, if it cannot be
  decoded; tagged OUTCOMES: how it was windowed.
  """

  def __init__(self, window_params: windows_lib.WindowParams, **kwargs):
    super().__init__(**kwargs)
    self._window_params = window_params
    self._windows = True

  def process(self, recording: Recording
              ) -> Iterator[transforms.FeaturizedBatch]:
    try:
      waveform = audio_decoding.read_file(
          recording.path, self._params.sample_rate_hz,
          max_seconds=self._window_params.max_seconds,
          inside=posixpath.dirname(recording.path)).samples
      framed, starts, sounding = (t.numpy() for t in windows_lib.frame_windows(
          waveform, self._params, self._window_params))
    except Exception as e:  # pylint: disable=broad-except
      kind, reason = ((e.kind, str(e))
                      if isinstance(e, audio_limits.AudioError)
                      else ('undecodable', type(e).__name__))
      yield beam.pvalue.TaggedOutput(transforms.DEAD_LETTERS,
                                     transforms.DeadLetter(
          recording.name, recording.path, recording.split, kind, reason,
          what=RECORDING))
      return
    yield beam.pvalue.TaggedOutput(OUTCOMES, transforms.RecordingWindowed(
        recording.split, int((~sounding).sum())))
    rows = []
    for clip, start, heard in zip(framed, starts, sounding):
      if heard:
        note = _as_note(recording, float(start))
        rows.append((note, 0, clip))
        rows += self._copies(note, clip)
    for first in range(0, len(rows), self._batch_size):
      yield from self._featurize(rows[first:first + self._batch_size])


OUTCOMES = 'outcomes'


class WindowRecordings(beam.PTransform):
  """Recordings directories -> FeaturizedBatches of windows (main), and
  tagged FILTERED, DEAD_LETTERS and OUTCOMES of the recordings."""

  def __init__(self, directories, kept_sources, vocabulary, params,
               window_params, keep_audio, batch_size, jit_compile, augment,
               augment_split):
    super().__init__()
    self._directories = list(directories)
    self._filters = (kept_sources, vocabulary)
    self._window_params = window_params
    self._featurize = dict(params=params, keep_audio=keep_audio,
                           batch_size=batch_size, jit_compile=jit_compile,
                           augment=augment, augment_split=augment_split)

  def expand(self, pbegin):
    read = (pbegin
            | 'Directories' >> beam.Create(self._directories)
            | 'ReadLabels' >> beam.FlatMap(_recordings_of).with_outputs(
                transforms.DEAD_LETTERS, main=transforms.NOTES))
    kept = (read[transforms.NOTES]
            | 'Spread' >> beam.Reshuffle()
            | 'Filter' >> beam.FlatMap(filter_recording, *self._filters
                                       ).with_outputs(transforms.FILTERED,
                                                      main=transforms.NOTES))
    windowed = kept[transforms.NOTES] | 'Window' >> beam.ParDo(
        _WindowRecordingFn(self._window_params, **self._featurize)
    ).with_outputs(transforms.DEAD_LETTERS, OUTCOMES, main=transforms.NOTES)
    dead = ((read[transforms.DEAD_LETTERS],
             windowed[transforms.DEAD_LETTERS])
            | 'DeadLetters' >> beam.Flatten())
    return {transforms.NOTES: windowed[transforms.NOTES],
            transforms.FILTERED: kept[transforms.FILTERED],
            transforms.DEAD_LETTERS: dead,
            OUTCOMES: windowed[OUTCOMES]}
