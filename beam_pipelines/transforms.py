"""The stages of the NSynth -> MFCC TFRecord job, as small composable pieces.

Every note read from an examples.json ends in exactly one outcome: written
(to a split), filtered (by a named filter), or dead-lettered (with a reason).
`outcome_counts` names them; the job counts them with Beam metrics and in the
manifest, and checks that they add up to the notes read.
"""

import collections
import dataclasses
import functools
import json
import logging
import posixpath
import sys
import threading
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Sequence
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems

from beam_pipelines import augmentation
from beam_pipelines import examples_json
from beam_pipelines import splits
from nsynth_contracts import audio_decoding
from nsynth_contracts import audio_limits
from nsynth_contracts import cli
from nsynth_contracts import feature_params
from nsynth_contracts import file_safety
from nsynth_contracts import labels
from nsynth_contracts import schema

METRICS_NAMESPACE = 'nsynth'
DEAD_LETTERS = 'dead_letters'
FILTERED = 'filtered'
NOTES = 'notes'
# The split of a note that a --holdout_library run leaves out of every split.
HELD_OUT = ''


@dataclasses.dataclass(frozen=True)
class DeadLetter:
  """A note (or a recording) that could not become examples, and why."""
  note_str: str
  file: str
  split: str
  kind: str     # stable short reason, e.g. 'missing_audio', 'non_finite'
  reason: str   # readable detail
  what: str = 'note'   # or 'recording' (--recordings): accounted apart

  def to_json_line(self) -> str:
    return json.dumps(dataclasses.asdict(self), sort_keys=True)


@dataclasses.dataclass(frozen=True)
class Filtered:
  note: examples_json.Note
  filter_name: str   # 'source', 'family', 'cap' or 'holdout'
  what: str = 'note'   # or 'recording'


@dataclasses.dataclass(frozen=True)
class RecordingWindowed:
  """A recording that was decoded and cut: how many windows were silent."""
  split: str
  silent_windows: int


def outcome_counts(outcome: Any) -> list[tuple[str, int]]:
  """[(key, count)] of an outcome.

  Notes read: 'written/<split>', 'filtered/<filter>' or 'dead_letter/<kind>',
  each note exactly once. Apart from them: 'augmented/<split>' per augmented
  copy written, and for --recordings 'recording/windowed/<split>',
  'recording/filtered/<filter>', 'recording/dead_letter/<kind>' per
  recording, 'recording/silent_windows' and 'window/<split>' per window
  written.
  """
  if isinstance(outcome, FeaturizedBatch):
    kind = 'window' if outcome.windows else 'written'
    return list(collections.Counter(
        f'{"augmented" if outcome.copy_of(i) else kind}/{note.split}'
        for i, note in enumerate(outcome.notes)).items())
  prefix = 'recording/' if getattr(outcome, 'what', '') == 'recording' else ''
  if isinstance(outcome, Filtered):
    return [(f'{prefix}filtered/{outcome.filter_name}', 1)]
  if isinstance(outcome, DeadLetter):
    return [(f'{prefix}dead_letter/{outcome.kind}', 1)]
  if isinstance(outcome, RecordingWindowed):
    return [(f'recording/windowed/{outcome.split}', 1),
            ('recording/silent_windows', outcome.silent_windows)]
  raise TypeError(f'Not an outcome: {outcome!r}')


def _count(name: str, value: int = 1) -> None:
  beam.metrics.Metrics.counter(METRICS_NAMESPACE, name).inc(value)


# --- Reading examples.json -------------------------------------------------


def read_examples_json(split_dir: str) -> list[examples_json.RawEntry]:
  """Every entry of a split directory's examples.json (local or gs://).

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


def _entries_of(split_dir: str, split: str) -> Iterator[tuple[str, Any]]:
  """(key, entry) pairs to validate, and tagged DeadLetters for entries that
  cannot even travel through the pipeline (strings that are not Unicode) or
  must not be used (duplicate keys, repeated fields)."""
  entries = read_examples_json(split_dir)
  _count('notes_read', len(entries))
  json_path = posixpath.join(split_dir, examples_json.EXAMPLES_JSON)
  for entry in entries:
    problem = examples_json.entry_problem(entry)
    if problem:
      kind, reason = problem
      yield beam.pvalue.TaggedOutput(DEAD_LETTERS, DeadLetter(
          note_str=examples_json.printable(entry.key), file=json_path,
          split=split, kind=kind, reason=reason))
    else:
      yield entry.key, examples_json.as_plain_json(entry.value)


class _ValidateEntryFn(beam.DoFn):

  def __init__(self, split_dir: str, split: str):
    self._split_dir = split_dir
    self._split = split

  def process(self, item: tuple[str, Any]
              ) -> Iterator[examples_json.Note]:
    key, entry = item
    try:
      yield examples_json.note_from_entry(key, entry, self._split_dir,
                                          self._split)
    except Exception as e:  # pylint: disable=broad-except
      # EntryError names the field; anything else is still one bad entry.
      reason = (str(e) if isinstance(e, examples_json.EntryError)
                else f'cannot read the entry ({type(e).__name__})')
      yield beam.pvalue.TaggedOutput(DEAD_LETTERS, DeadLetter(
          note_str=examples_json.printable(str(key)),
          file=posixpath.join(self._split_dir, examples_json.EXAMPLES_JSON),
          split=self._split, kind=examples_json.INVALID_METADATA,
          reason=reason))


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
    entries = (pbegin
               | 'Directory' >> beam.Create([self._split_dir])
               | 'ReadExamplesJson' >> beam.FlatMap(
                   _entries_of, self._split).with_outputs(
                       DEAD_LETTERS, main=NOTES))
    validated = (entries[NOTES]
                 | 'Spread' >> beam.Reshuffle()
                 | 'Validate' >> beam.ParDo(
                     _ValidateEntryFn(self._split_dir, self._split)
                 ).with_outputs(DEAD_LETTERS, main=NOTES))
    dead_letters = ((entries[DEAD_LETTERS], validated[DEAD_LETTERS])
                    | 'DeadLetters' >> beam.Flatten())
    return {NOTES: validated[NOTES], DEAD_LETTERS: dead_letters}


# --- Splits, filters, caps ---------------------------------------------------


def reassign_split(note: examples_json.Note, method: splits.SplitMethod,
                   fractions: Sequence[float],
                   holdout_library: str = '') -> examples_json.Note:
  """The note with its split chosen by `method` (DIRECTORIES keeps it)."""
  if method is splits.SplitMethod.DIRECTORIES:
    return note
  if method is splits.SplitMethod.LIBRARY:
    split = splits.split_leaving_out(note.library, note.split, holdout_library)
    return dataclasses.replace(note, split=split or HELD_OUT)
  key = (note.instrument_str if method is splits.SplitMethod.INSTRUMENT
         else note.note_str)
  return dataclasses.replace(note, split=splits.assign_split(key, fractions))


def filter_note(note: examples_json.Note, kept_sources: Sequence[str],
                vocabulary: labels.LabelVocabulary
                ) -> Iterator[examples_json.Note]:
  """Yields the note, or a tagged Filtered naming the first filter it fails."""
  if note.split == HELD_OUT:
    yield beam.pvalue.TaggedOutput(FILTERED, Filtered(note, 'holdout'))
  elif note.source not in kept_sources:
    yield beam.pvalue.TaggedOutput(FILTERED, Filtered(note, 'source'))
  elif note.family not in vocabulary.families:
    yield beam.pvalue.TaggedOutput(FILTERED, Filtered(note, 'family'))
  else:
    yield note


def _keep_first_by_hash(
    group: tuple[tuple[str, str], Iterable[examples_json.Note]],
    max_notes: int) -> Iterator[examples_json.Note]:
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


# --- Audio and features -----------------------------------------------------


def read_note_file(path: str, audio_dir: str,
                   max_bytes: int = audio_limits.DEFAULT_LIMITS.max_file_bytes
                   ) -> bytes:
  """The bytes of one note's file, read only if it is safe to read.

  A local file must be a regular file inside `audio_dir`, after following
  links: a link that leaves the dataset is not read (it could point at any
  file of the machine's), nor is a FIFO or a device, which could block or
  never end. No file larger than `max_bytes` is read.

  Raises:
    audio_limits.AudioError: with the kind and reason for the dead letter;
      the reason never quotes the file's contents.
  """
  if FileSystems.get_scheme(path) is not None:  # gs:// etc.: no links there.
    return _read_remote(path, max_bytes)
  real, _ = file_safety.checked_local_file(path, audio_dir, max_bytes)
  try:
    with open(real, 'rb') as f:
      return f.read(max_bytes + 1)
  except OSError as e:
    raise audio_limits.AudioError('unreadable_audio',
                                  e.strerror or type(e).__name__) from None


def _read_remote(path: str, max_bytes: int) -> bytes:
  try:
    with FileSystems.open(path) as f:
      data = f.read(max_bytes + 1)
  except Exception as e:  # pylint: disable=broad-except
    if not FileSystems.exists(path):
      raise audio_limits.AudioError('missing_audio',
                                    'file does not exist') from None
    raise audio_limits.AudioError('unreadable_audio',
                                  f'cannot read it ({type(e).__name__})'
                                  ) from None
  if len(data) > max_bytes:
    raise audio_limits.AudioError('too_large', f'the file is larger than '
                                  f'{max_bytes} bytes')
  return data


def load_clip(
    note: examples_json.Note,
    params: feature_params.FeatureParams = feature_params.DEFAULT_PARAMS
) -> np.ndarray | DeadLetter:
  """The note's clip, float32 [clip_samples], or the DeadLetter saying why not.

  Nothing raised while reading, decoding or validating one note escapes:
  a bad file costs its own note, never the job.
  """
  try:
    data = read_note_file(note.audio_path, posixpath.dirname(note.audio_path))
    return audio_decoding.decode_clip(data, params)
  except audio_limits.AudioError as e:
    kind, reason = e.kind, str(e)
  except Exception as e:  # pylint: disable=broad-except
    kind, reason = 'undecodable', f'{type(e).__name__} while decoding'
  return DeadLetter(note.note_str, note.audio_path, note.split, kind, reason)


_TF_IMPORT_LOCK = threading.Lock()


def import_tensorflow_for_features():
  """TensorFlow, imported without the Keras it loads eagerly.

  TF 2.17's __init__ imports keras.src.optimizers so that Keras' optimizers
  register for SavedModel loading, and with Keras come matplotlib, scipy and
  sklearn where installed: 1.4 s of a worker's 3.6 s TensorFlow import here,
  paid by every worker, for nothing the feature function uses. Marking that
  one module unimportable while TensorFlow imports makes TF skip it (it
  catches the ImportError); Keras still imports normally later in the same
  process if anything asks for it.
  """
  with _TF_IMPORT_LOCK:
    if 'tensorflow' not in sys.modules:
      skipped = 'keras.src.optimizers'
      sys.modules.setdefault(skipped, None)
      try:
        import tensorflow  # noqa: F401  (imported for its side effect)
      finally:
        if sys.modules.get(skipped, 0) is None:
          del sys.modules[skipped]
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    return tf


@functools.cache
def _compiled_feature_function(params: feature_params.FeatureParams,
                               batch_size: int, jit_compile: bool):
  """The feature function traced for one batch shape, once per process.

  Imported here, not at module level: the launcher imports this module and
  never needs TensorFlow. Cached: with --direct_running_mode=multi_threading
  every bundle thread has its own DoFn, and they share one compiled program.
  """
  tf = import_tensorflow_for_features()
  from nsynth_contracts import features  # pylint: disable=g-import-not-at-top
  return tf.function(
      lambda clips: features.waveform_to_mfcc(clips, params),
      input_signature=[tf.TensorSpec([batch_size, params.clip_samples],
                                     tf.float32)],
      # XLA fuses the elementwise steps after the FFT (power, log, top_db):
      # ~15% less CPU per note here, same function, same numbers (tested).
      jit_compile=jit_compile)


def _aligned_zeros(shape: tuple[int, ...], alignment: int = 64) -> np.ndarray:
  """float32 zeros whose data starts on an `alignment`-byte boundary."""
  size = int(np.prod(shape))
  itemsize = np.dtype(np.float32).itemsize
  raw = np.zeros(size + alignment // itemsize, np.float32)
  offset = (-raw.ctypes.data % alignment) // itemsize
  return raw[offset:offset + size].reshape(shape)


@dataclasses.dataclass(frozen=True)
class FeaturizedBatch:
  """A batch of records with their features, one array for all of them.

  The job moves notes through its expensive stages in batches: one element,
  one feature call, one statistics update per batch instead of per note. A
  row is a note as read (copy 0) or one of its augmented copies (1..K).
  """
  notes: tuple[examples_json.Note, ...]
  mfccs: np.ndarray           # float32 [rows, frames, coefficients]
  clips: np.ndarray | None    # float32 [rows, clip_samples], with keep_audio
  copies: tuple[int, ...] = ()   # per row; empty: every row is copy 0
  windows: bool = False          # rows are windows of --recordings

  @property
  def split(self) -> str:
    """The split of every note in the batch (see `per_split`)."""
    (split,) = {note.split for note in self.notes}
    return split

  def copy_of(self, row: int) -> int:
    return self.copies[row] if self.copies else 0

  def per_split(self) -> Iterable['FeaturizedBatch']:
    """One batch per split present: each split is written to its own shards."""
    rows = {}
    for i, note in enumerate(self.notes):
      rows.setdefault(note.split, []).append(i)
    if len(rows) == 1:
      yield self
      return
    for split_rows in rows.values():
      yield self.rows(split_rows)

  def rows(self, indices: Sequence[int]) -> 'FeaturizedBatch':
    """The batch of only these rows."""
    return FeaturizedBatch(
        tuple(self.notes[i] for i in indices), self.mfccs[list(indices)],
        None if self.clips is None else self.clips[list(indices)],
        tuple(self.copies[i] for i in indices) if self.copies else (),
        self.windows)


class _FeaturizeBatchFn(beam.DoFn):
  """Reads, decodes and validates a batch of notes, then computes their MFCCs.

  Main output: FeaturizedBatches of the notes whose audio was good, and of
  their augmented copies (train split only); tagged DEAD_LETTERS: one
  DeadLetter per bad note.

  The feature function is traced (and by default XLA-compiled) once per worker
  in setup(), for one fixed batch shape: a short last batch runs padded
  rather than compiling a second program.
  """

  def __init__(self, params: feature_params.FeatureParams, keep_audio: bool,
               batch_size: int, jit_compile: bool,
               augment: augmentation.AugmentationConfig,
               augment_split: str):
    self._params = params
    self._keep_audio = keep_audio
    self._batch_size = batch_size
    self._jit_compile = jit_compile
    self._augment = augment
    self._augment_split = augment_split
    self._mfcc_fn = None
    self._clips = None
    self._clips_tensor = None
    self._notes_done = 0
    self._windows = False   # rows are notes; recordings.py's subclass: windows

  def setup(self):
    tf = import_tensorflow_for_features()
    params = self._params
    self._mfcc_fn = _compiled_feature_function(params, self._batch_size,
                                               self._jit_compile)
    # Decoded clips go straight into one reused batch array, which the
    # feature function reads in place (DLPack) instead of copying 16 MB per
    # batch; TensorFlow needs its buffers 64-byte aligned.
    self._clips = _aligned_zeros((self._batch_size, params.clip_samples))
    self._clips_tensor = tf.experimental.dlpack.from_dlpack(
        self._clips.__dlpack__())
    with cli.native_stderr_silenced():  # XLA's compile-time log lines.
      self._mfcc_fn(self._clips_tensor)

  def process(self, notes: list[examples_json.Note]
              ) -> Iterator[FeaturizedBatch]:
    rows = []   # (note, copy, clip)
    for note in notes:
      clip = load_clip(note, self._params)
      if isinstance(clip, DeadLetter):
        yield beam.pvalue.TaggedOutput(DEAD_LETTERS, clip)
        continue
      rows.append((note, 0, clip))
      rows += self._copies(note, clip)
    for start in range(0, len(rows), self._batch_size):
      yield from self._featurize(rows[start:start + self._batch_size])
    before = self._notes_done
    self._notes_done += len(notes)
    if self._notes_done // 1000 > before // 1000:
      logging.info('This worker has computed features of %d notes.',
                   self._notes_done)

  def _copies(self, note, clip) -> list[tuple[examples_json.Note, int,
                                              np.ndarray]]:
    if not self._augment.copies or note.split != self._augment_split:
      return []
    try:
      copies = augmentation.augmented_copies(clip, note.note_str,
                                             self._augment, self._params)
    except Exception:  # pylint: disable=broad-except
      # The note itself is still written; only its extra copies are lost.
      _count('augmentation_failed')
      return []
    return [(note, k, c) for k, c in enumerate(copies, start=1)]

  def _features_row_by_row(self, count: int) -> list[np.ndarray | None]:
    """Each clip alone, when the batch failed: only the bad row is lost."""
    clips = self._clips[:count].copy()
    result = []
    for clip in clips:
      self._clips[:] = 0.0
      self._clips[0] = clip
      try:
        result.append(self._mfcc_fn(self._clips_tensor).numpy()[0])
      except Exception:  # pylint: disable=broad-except
        result.append(None)
    self._clips[:count] = clips
    return result

  def _featurize(self, rows):
    count = len(rows)
    for i, (_, _, clip) in enumerate(rows):
      self._clips[i] = clip
    try:
      # Synchronous: the batch array is free to refill once this returns.
      mfccs = self._mfcc_fn(self._clips_tensor).numpy()[:count]
    except Exception:  # pylint: disable=broad-except
      mfccs = self._features_row_by_row(count)
    kept = []
    for i, (note, copy, _) in enumerate(rows):
      if mfccs[i] is not None and np.isfinite(mfccs[i]).all():
        kept.append(i)
      elif copy:
        _count('augmentation_failed')
      else:
        yield beam.pvalue.TaggedOutput(DEAD_LETTERS, DeadLetter(
            note.note_str, note.audio_path, note.split, 'feature_error',
            'the feature function failed on this note' if mfccs[i] is None
            else 'its features are not finite'))
    if not kept:
      return
    copies = tuple(rows[i][1] for i in kept)
    yield FeaturizedBatch(
        tuple(rows[i][0] for i in kept), np.stack([mfccs[i] for i in kept]),
        self._clips[kept].copy() if self._keep_audio else None,
        copies if any(copies) else (), self._windows)


class FeaturizeNotes(beam.PTransform):
  """Notes -> FeaturizedBatches (main) and DeadLetters (tagged).

  Batches the notes, then reads and validates each note's audio, adds the
  augmented copies of training notes, and computes MFCCs for a whole batch
  with one call of the shared feature function.
  """

  def __init__(
      self,
      params: feature_params.FeatureParams = feature_params.DEFAULT_PARAMS,
      keep_audio: bool = False, max_batch_size: int = 64,
      jit_compile: bool = True,
      augment: augmentation.AugmentationConfig = augmentation.NO_AUGMENTATION,
      augment_split: str = 'train'):
    super().__init__()
    self._params = params
    self._keep_audio = keep_audio
    self._max_batch_size = max_batch_size
    self._jit_compile = jit_compile
    self._augment = augment
    self._augment_split = augment_split

  def expand(self, notes):
    return (
        notes
        # Fixed-size batches: BatchElements' adaptive sizing settles on 8-18
        # notes here, where the feature function is ~1.5x faster per note at 64.
        | 'Batch' >> beam.BatchElements(
            min_batch_size=self._max_batch_size,
            max_batch_size=self._max_batch_size)
        | 'Featurize' >> beam.ParDo(_FeaturizeBatchFn(
            self._params, self._keep_audio, self._max_batch_size,
            self._jit_compile, self._augment,
            self._augment_split)).with_outputs(DEAD_LETTERS, main=NOTES))


def to_serialized_examples(batch: FeaturizedBatch,
                           vocabulary: labels.LabelVocabulary) -> list[bytes]:
  """One serialized tf.train.Example per note of the batch."""
  return [
      schema.serialize_note(schema.NoteExample(
          mfcc=batch.mfccs[i],
          label=vocabulary.label_id(note.family),
          family=note.family,
          source=note.source,
          instrument=note.instrument_str,
          pitch=note.pitch,
          velocity=note.velocity,
          note_str=note.note_str,
          augmentation=batch.copy_of(i),
          audio=None if batch.clips is None else batch.clips[i]))
      for i, note in enumerate(batch.notes)]


# --- Statistics and accounting ----------------------------------------------


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

  def add_input(self, accumulator, mfccs):
    # [frames, coefficients] of a note, or [notes, frames, coefficients].
    mfccs = np.asarray(mfccs, dtype=np.float64)
    frames = mfccs.reshape(-1, mfccs.shape[-1])
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
  """{name: PCollection of outcomes} -> one dict {outcome key: notes}.

  Each outcome is reduced to its counts inside its own stage, before the
  Flatten: flattening the written batches themselves would ship every MFCC
  array between workers just to be counted. Each key is also a Beam counter.
  """

  def expand(self, outcomes_by_name):
    # A dict, because Beam flattens a list piped into a composite itself.
    counts = [pcoll | f'Count[{name}]' >> beam.FlatMap(_counted_outcomes)
              for name, pcoll in sorted(outcomes_by_name.items())]
    return (counts
            | 'Flatten' >> beam.Flatten()
            | 'Sum' >> beam.CombinePerKey(sum)
            | 'ToDict' >> beam.combiners.ToDict())


def _counted_outcomes(outcome: Any) -> list[tuple[str, int]]:
  counts = outcome_counts(outcome)
  for key, notes in counts:
    _count(key.replace('/', '_'), notes)
  return counts
