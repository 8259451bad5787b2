"""Recordings of any length as training examples: one per 4-second window.

With --recordings, the job also reads directories of labelled recordings
(nsynth_contracts.recordings_layout; decoded by nsynth_contracts.
audio_decoding). Each recording is cut by nsynth_contracts.windows, the
function the serving signatures use, and every sounding window becomes a
record like a note's (note_str `<file>@<start>s`, pitch and velocity 0).
Recordings are accounted for apart from notes: windowed, filtered or
dead-lettered, each once; the windows written and skipped as silent are
counted too.
"""

import posixpath
from collections.abc import Iterator

import apache_beam as beam

from beam_pipelines import accounting
from beam_pipelines import featurize
from beam_pipelines import output
from beam_pipelines import progress
from beam_pipelines.batches import FeaturizedBatch
from nsynth_contracts import audio_decoding
from nsynth_contracts import audio_limits
from nsynth_contracts import examples_json
from nsynth_contracts import labelled_recordings
from nsynth_contracts import labels
from nsynth_contracts import outcomes
from nsynth_contracts import window_params
from nsynth_contracts.labelled_recordings import Recording


def _listed(directory: str) -> Iterator[Recording]:
  """The directory's Recordings; tagged DEAD_LETTERS for bad labels."""
  listed = list(labelled_recordings.recordings_of(
      directory, output.files_for(directory)))
  accounting.count(outcomes.RECORDINGS_READ_COUNTER, len(listed))
  for item in listed:
    if isinstance(item, outcomes.DeadLetter):
      yield beam.pvalue.TaggedOutput(accounting.DEAD_LETTERS, item)
    else:
      yield item


def filter_recording(recording: Recording, kept_sources,
                     vocabulary: labels.LabelVocabulary
                     ) -> Iterator[Recording]:
  """The recording, or a tagged Filtered (the notes' filters, applied)."""
  reason = ('source' if recording.source not in kept_sources else
            'family' if recording.family not in vocabulary.families else None)
  if reason:
    yield beam.pvalue.TaggedOutput(accounting.FILTERED, accounting.Filtered(
        _as_note(recording, 0.0), reason, what=outcomes.RECORDING))
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


class WindowRecordingFn(beam.DoFn):
  """Decodes one recording, cuts it into windows, featurises the sounding
  ones.

  NOTES: FeaturizedBatches of windows (and of their augmented copies, train
  split only); DEAD_LETTERS: the recording, if it cannot be decoded;
  RECORDINGS_WINDOWED: how it was windowed. Each recording done counts its
  windows towards the launcher's progress display, when it shows one.
  """

  def __init__(self, featurizer: featurize.Featurizer,
               windows: window_params.WindowParams,
               progress_address: progress.Address | None = None):
    self._featurizer = featurizer
    self._windows = windows
    self._done = progress.WorkerCounter(progress_address)
    self._cut = 0

  def setup(self):
    self._featurizer.setup()

  def finish_bundle(self):
    # The last count of each bundle, so the display's final figure is whole.
    self._done.send()

  def process(self, recording: Recording) -> Iterator[FeaturizedBatch]:
    yield from self._windowed(recording)
    self._done.add(self._cut)

  def _windowed(self, recording: Recording) -> Iterator[FeaturizedBatch]:
    featurizer = self._featurizer
    self._cut = 1   # What the launcher counted for a recording it cannot cut.
    try:
      waveform = audio_decoding.read_file(
          recording.path, featurizer.params.sample_rate_hz,
          max_seconds=self._windows.max_seconds,
          inside=posixpath.dirname(recording.path)).samples
      framed, starts, sounding = featurizer.frame(waveform, self._windows)
      self._cut = len(framed)
    except Exception as e:
      kind, reason = ((e.kind, str(e))
                      if isinstance(e, audio_limits.AudioError)
                      else ('undecodable', type(e).__name__))
      yield beam.pvalue.TaggedOutput(
          accounting.DEAD_LETTERS, outcomes.DeadLetter(
              recording.name, recording.path, recording.split, kind, reason,
              what=outcomes.RECORDING))
      return
    yield beam.pvalue.TaggedOutput(
        accounting.RECORDINGS_WINDOWED, accounting.RecordingWindowed(
            recording.split, int((~sounding).sum())))
    rows = []
    for clip, start, heard in zip(framed, starts, sounding):
      if heard:
        rows += featurizer.rows(_as_note(recording, float(start)), clip)
    yield from featurizer.featurize_all(rows)


class WindowRecordings(beam.PTransform):
  """Recordings directories -> FeaturizedBatches of windows (NOTES), and the
  recordings' FILTERED, DEAD_LETTERS and RECORDINGS_WINDOWED outcomes."""

  def __init__(self, directories, kept_sources,
               vocabulary: labels.LabelVocabulary,
               featurizer: featurize.Featurizer,
               windows: window_params.WindowParams,
               progress_address: progress.Address | None = None):
    super().__init__()
    self._directories = list(directories)
    self._filters = (kept_sources, vocabulary)
    self._featurizer = featurizer
    self._windows = windows
    self._progress_address = progress_address

  def expand(self, pbegin):
    read = (pbegin
            | 'Directories' >> beam.Create(self._directories)
            | 'ReadLabels' >> beam.FlatMap(_listed).with_outputs(
                accounting.DEAD_LETTERS, main=accounting.NOTES))
    kept = (read[accounting.NOTES]
            | 'Spread' >> beam.Reshuffle()
            | 'Filter' >> beam.FlatMap(filter_recording, *self._filters
                                       ).with_outputs(accounting.FILTERED,
                                                      main=accounting.NOTES))
    windowed = kept[accounting.NOTES] | 'Window' >> beam.ParDo(
        WindowRecordingFn(self._featurizer, self._windows,
                          self._progress_address)).with_outputs(
            accounting.DEAD_LETTERS, accounting.RECORDINGS_WINDOWED,
            main=accounting.NOTES)
    dead = ((read[accounting.DEAD_LETTERS],
             windowed[accounting.DEAD_LETTERS])
            | 'DeadLetters' >> beam.Flatten())
    return {accounting.NOTES: windowed[accounting.NOTES],
            accounting.FILTERED: kept[accounting.FILTERED],
            accounting.DEAD_LETTERS: dead,
            accounting.RECORDINGS_WINDOWED:
                windowed[accounting.RECORDINGS_WINDOWED]}
