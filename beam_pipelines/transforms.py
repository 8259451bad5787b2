"""The stages of the NSynth -> MFCC TFRecord job, as small composable pieces.

Every note read from an examples.json ends in exactly one outcome: written
(to a split), filtered (by a named filter), or dead-lettered (with a reason).
`outcome_key` names them; the job counts them with Beam metrics and in the
manifest, and checks that they add up to the notes read.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import posixpath
from typing import Iterable, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems

from beam_pipelines import examples_json
from beam_pipelines import splits
from beam_pipelines import wav
from nsynth_contracts import feature_params
from nsynth_contracts import labels
from nsynth_contracts import schema

METRICS_NAMESPACE = 'nsynth'
DEAD_LETTERS = 'dead_letters'
FILTERED = 'filtered'
NOTES = 'notes'


@dataclasses.dataclass(frozen=True)
class DeadLetter:
  """A note that could not become an example, and why."""
  note_str: str
  file: str
  split: str
  kind: str     # stable short reason, e.g. 'missing_audio', 'non_finite'
  reason: str   # readable detail

  def to_json_line(self) -> str:
    return json.dumps(dataclasses.asdict(self), sort_keys=True)


@dataclasses.dataclass(frozen=True)
class Filtered:
  note: examples_json.Note
  filter_name: str   # 'source', 'family' or 'cap'


@dataclasses.dataclass(frozen=True)
class FeaturizedNote:
  note: examples_json.Note
  mfcc: np.ndarray           # float32 [frames, coefficients]
  clip: np.ndarray | None    # float32 [clip_samples], with keep_audio


def outcome_key(outcome) -> str:
  """'written/<split>', 'filtered/<filter>' or 'dead_letter/<kind>'."""
  if isinstance(outcome, FeaturizedNote):
    return f'written/{outcome.note.split}'
  if isinstance(outcome, Filtered):
    return f'filtered/{outcome.filter_name}'
  if isinstance(outcome, DeadLetter):
    return f'dead_letter/{outcome.kind}'
  raise TypeError(f'Not an outcome: {outcome!r}')


def _count(name: str, value: int = 1) -> None:
  beam.metrics.Metrics.counter(METRICS_NAMESPACE, name).inc(value)


# --- Reading examples.json -------------------------------------------------


def read_examples_json(split_dir: str) -> dict:
  """The parsed examples.json of a split directory (local or gs://).

  Raises:
    examples_json.ExamplesJsonError: naming the file when it is missing,
      unreadable or malformed.
  """
  path = posixpath.join(split_dir, examples_json.EXAMPLES_JSON)
  try:
    with FileSystems.open(path) as f:
      text = f.read()
  except Exception as e:  # Beam wraps I/O errors per filesystem.
    raise examples_json.ExamplesJsonError(
        f'Cannot read {path}: {e}') from e
  return examples_json.parse_examples_json(path, text)


def _entries_of(split_dir: str) -> Iterable[tuple[str, object]]:
  entries = read_examples_json(split_dir)
  _count('notes_read', len(entries))
  yield from entries.items()


class _ValidateEntryFn(beam.DoFn):

  def __init__(self, split_dir: str, split: str):
    self._split_dir = split_dir
    self._split = split

  def process(self, item):
    key, entry = item
    try:
      yield examples_json.note_from_entry(key, entry, self._split_dir,
                                          self._split)
    except examples_json.EntryError as e:
      yield beam.pvalue.TaggedOutput(DEAD_LETTERS, DeadLetter(
          note_str=str(key),
          file=posixpath.join(self._split_dir, examples_json.EXAMPLES_JSON),
          split=self._split, kind='invalid_metadata', reason=str(e)))


class ReadNSynthSplit(beam.PTransform):
  """One NSynth split directory -> Notes (main) and DeadLetters (tagged).

  The entries are reshuffled before validation so that the expensive stages
  after it spread over every worker, not the one that read the file.
  """

  def __init__(self, split_dir: str, split: str):
    super().__init__()
    self._split_dir = split_dir
    self._split = split

  def expand(self, pbegin):
    return (pbegin
            | 'Directory' >> beam.Create([self._split_dir])
            | 'ReadExamplesJson' >> beam.FlatMap(_entries_of)
            | 'Spread' >> beam.Reshuffle()
            | 'Validate' >> beam.ParDo(
                _ValidateEntryFn(self._split_dir, self._split)).with_outputs(
                    DEAD_LETTERS, main=NOTES))


# --- Splits, filters, caps ---------------------------------------------------


def reassign_split(note: examples_json.Note, method: splits.SplitMethod,
                   fractions: Sequence[float]) -> examples_json.Note:
  """The note with its split chosen by `method` (DIRECTORIES keeps it)."""
  if method is splits.SplitMethod.DIRECTORIES:
    return note
  key = (note.instrument_str if method is splits.SplitMethod.INSTRUMENT
         else note.note_str)
  return dataclasses.replace(note, split=splits.assign_split(key, fractions))


def filter_note(note: examples_json.Note, kept_sources: Sequence[str],
                vocabulary: labels.LabelVocabulary):
  """Yields the note, or a tagged Filtered naming the first filter it fails."""
  if note.source not in kept_sources:
    yield beam.pvalue.TaggedOutput(FILTERED, Filtered(note, 'source'))
  elif note.family not in vocabulary.families:
    yield beam.pvalue.TaggedOutput(FILTERED, Filtered(note, 'family'))
  else:
    yield note


def _keep_first_by_hash(group, max_notes: int):
  _, notes = group
  ordered = sorted(notes,
                   key=lambda n: splits.unit_interval_hash(n.note_str))
  yield from ordered[:max_notes]
  for note in ordered[max_notes:]:
    yield beam.pvalue.TaggedOutput(FILTERED, Filtered(note, 'cap'))


class CapPerFamily(beam.PTransform):
  """Keeps at most `max_notes` per (split, family), chosen by a stable hash.

  Main output: the kept Notes; tagged FILTERED: the rest, as Filtered('cap').
  """

  def __init__(self, max_notes: int):
    super().__init__()
    self._max_notes = max_notes

  def expand(self, notes):
    return (notes
            | 'KeyBySplitFamily' >> beam.Map(lambda n: ((n.split, n.family), n))
            | 'Group' >> beam.GroupByKey()
            | 'KeepFirst' >> beam.FlatMap(
                _keep_first_by_hash, self._max_notes).with_outputs(
                    FILTERED, main=NOTES))


# --- Audio and features --------------------------------------------------------


def read_clip(
    note: examples_json.Note,
    params: feature_params.FeatureParams = feature_params.DEFAULT_PARAMS):
  """Yields (note, clip float32 [clip_samples]) or a tagged DeadLetter."""
  def dead(kind, reason):
    return beam.pvalue.TaggedOutput(DEAD_LETTERS, DeadLetter(
        note.note_str, note.audio_path, note.split, kind, reason))
  try:
    with FileSystems.open(note.audio_path) as f:
      data = f.read()
  except Exception as e:  # pylint: disable=broad-except
    missing = not FileSystems.exists(note.audio_path)
    yield dead('missing_audio' if missing else 'unreadable_audio',
               'file does not exist' if missing else str(e))
    return
  try:
    yield note, wav.to_clip(wav.decode_wav(data), params)
  except wav.AudioError as e:
    yield dead(e.kind, str(e))


class _ComputeMfccFn(beam.DoFn):
  """Runs the shared feature function on a batch of clips.

  The traced (and by default XLA-compiled) tf.function is built once per
  worker in setup(), not per bundle.
  """

  def __init__(self, params: feature_params.FeatureParams, keep_audio: bool,
               jit_compile: bool):
    self._params = params
    self._keep_audio = keep_audio
    self._jit_compile = jit_compile
    self._mfcc_fn = None
    self._notes_done = 0

  def setup(self):
    # Here, not at module level: the launcher imports this module and never
    # needs TensorFlow; each worker pays for it once.
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from nsynth_contracts import features  # pylint: disable=g-import-not-at-top
    params = self._params
    self._mfcc_fn = tf.function(
        lambda clips: features.waveform_to_mfcc(clips, params),
        input_signature=[tf.TensorSpec([None, params.clip_samples],
                                       tf.float32)],
        # XLA fuses the elementwise steps after the FFT (power, log, top_db):
        # ~15% less CPU per note here, same function, same numbers (tested).
        jit_compile=self._jit_compile)

  def process(self, batch):
    notes = [note for note, _ in batch]
    clips = np.stack([clip for _, clip in batch])
    mfccs = self._mfcc_fn(clips).numpy()
    for i, note in enumerate(notes):
      yield FeaturizedNote(note, mfccs[i],
                           clips[i] if self._keep_audio else None)
    before = self._notes_done
    self._notes_done += len(notes)
    if self._notes_done // 1000 > before // 1000:
      logging.info('This worker has computed features of %d notes.',
                   self._notes_done)


class FeaturizeNotes(beam.PTransform):
  """Notes -> FeaturizedNotes (main) and DeadLetters (tagged).

  Reads and validates each note's audio, then computes MFCCs in batches with
  the shared feature function.
  """

  def __init__(
      self,
      params: feature_params.FeatureParams = feature_params.DEFAULT_PARAMS,
      keep_audio: bool = False, max_batch_size: int = 64,
      jit_compile: bool = True):
    super().__init__()
    self._params = params
    self._keep_audio = keep_audio
    self._max_batch_size = max_batch_size
    self._jit_compile = jit_compile

  def expand(self, notes):
    clips = notes | 'ReadAudio' >> beam.FlatMap(
        read_clip, self._params).with_outputs(DEAD_LETTERS, main=NOTES)
    featurized = (
        clips[NOTES]
        # Fixed-size batches: BatchElements' adaptive sizing settles on 8-18
        # notes here, where the feature function is ~1.5x faster per note at 64.
        | 'Batch' >> beam.BatchElements(
            min_batch_size=self._max_batch_size,
            max_batch_size=self._max_batch_size)
        | 'Mfcc' >> beam.ParDo(
            _ComputeMfccFn(self._params, self._keep_audio, self._jit_compile)))
    return {NOTES: featurized, DEAD_LETTERS: clips[DEAD_LETTERS]}


def to_serialized_example(featurized: FeaturizedNote,
                          vocabulary: labels.LabelVocabulary) -> bytes:
  note = featurized.note
  return schema.serialize_note(schema.NoteExample(
      mfcc=featurized.mfcc,
      label=vocabulary.label_id(note.family),
      family=note.family,
      source=note.source,
      instrument=note.instrument_str,
      pitch=note.pitch,
      velocity=note.velocity,
      note_str=note.note_str,
      audio=featurized.clip))


# --- Statistics and accounting -------------------------------------------------


class MfccStatisticsFn(beam.CombineFn):
  """Per-coefficient mean and standard deviation over all frames.

  Accumulates (count, mean, M2) and merges with Chan et al.'s parallel
  update, which stays accurate where sum-of-squares would cancel (c0 is in
  the hundreds).
  """

  def create_accumulator(self):
    return 0, None, None

  @staticmethod
  def _merge(a, b):
    n_a, mean_a, m2_a = a
    n_b, mean_b, m2_b = b
    if n_a == 0:
      return b
    if n_b == 0:
      return a
    n = n_a + n_b
    delta = mean_b - mean_a
    mean = mean_a + delta * (n_b / n)
    m2 = m2_a + m2_b + delta**2 * (n_a * n_b / n)
    return n, mean, m2

  def add_input(self, accumulator, mfcc):
    frames = np.asarray(mfcc, dtype=np.float64)     # [frames, coefficients]
    mean = frames.mean(axis=0)
    m2 = ((frames - mean)**2).sum(axis=0)
    return self._merge(accumulator, (frames.shape[0], mean, m2))

  def merge_accumulators(self, accumulators):
    result = self.create_accumulator()
    for accumulator in accumulators:
      result = self._merge(result, accumulator)
    return result

  def extract_output(self, accumulator):
    n, mean, m2 = accumulator
    if n == 0:
      return None
    return {'num_frames': int(n), 'mean': mean.tolist(),
            'std': np.sqrt(m2 / n).tolist()}


class CountOutcomes(beam.PTransform):
  """{name: PCollection of outcomes} -> one dict {outcome_key: count}.

  Each outcome is reduced to its key inside its own stage, before the
  Flatten: flattening the written notes themselves would ship every MFCC
  array between workers just to be counted. Each key is also a Beam counter.
  """

  def expand(self, outcomes_by_name):
    # A dict, because Beam flattens a list piped into a composite itself.
    keys = [pcoll | f'Key[{name}]' >> beam.Map(_counted_outcome_key)
            for name, pcoll in sorted(outcomes_by_name.items())]
    return (keys
            | 'Flatten' >> beam.Flatten()
            | 'Count' >> beam.combiners.Count.PerElement()
            | 'ToDict' >> beam.combiners.ToDict())


def _counted_outcome_key(outcome) -> str:
  key = outcome_key(outcome)
  _count(key.replace('/', '_'))
  return key
