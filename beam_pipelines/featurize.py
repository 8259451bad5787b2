"""Notes (or recording windows) -> batches of records with their features.

The costly middle of the job. A `Featurizer` is one worker's state: the
feature function traced (and by default XLA-compiled) once, for one fixed
batch shape, and one reused batch array it reads in place. It takes rows --
(note, copy index, clip) -- of notes as read, of their augmented copies, or
of windows of a recording, and yields FeaturizedBatches plus a DeadLetter
for each note that has no sound or no finite features.
`FeaturizeNotes` is the composite that batches notes, decodes them and runs
a Featurizer; `beam_pipelines.recordings` runs one on windows.
"""

import functools
import threading
from collections.abc import Iterator
from collections.abc import Sequence

import apache_beam as beam
import numpy as np

from beam_pipelines import accounting
from beam_pipelines import augmentation
from beam_pipelines import note_audio
from beam_pipelines import progress
from beam_pipelines import tensorflow_threads
from beam_pipelines.batches import FeaturizedBatch
from nsynth_common import cli
from nsynth_contracts import examples_json
from nsynth_contracts import feature_params
from nsynth_contracts import outcomes
from nsynth_contracts import precision as precision_lib
from nsynth_contracts import representation as representation_lib
from nsynth_contracts import schema
from nsynth_contracts import window_params

# One row of a batch: the note (or window), its copy index, its clip.
Row = tuple[examples_json.Note, int, np.ndarray]


@functools.cache
def _worker_functions(params: feature_params.FeatureParams, batch_size: int,
                      jit_compile: bool):
  """(tensorflow, the feature function traced for one batch shape, the
  windows module), once per process.

  TensorFlow is imported here, in the workers' setup, and nowhere else in the
  Beam job: the launcher never computes a feature. Cached: with
  --direct_running_mode=multi_threading every bundle thread has its own
  DoFn, and they share one compiled program.
  """
  # A worker process of multi_processing mode starts TensorFlow itself.
  cli.import_tensorflow_quietly()
  import tensorflow as tf
  tensorflow_threads.for_worker(tf)

  from nsynth_contracts import features
  from nsynth_contracts import windows
  mfcc_fn = tf.function(
      lambda clips: features.waveform_to_mfcc(clips, params),
      input_signature=[tf.TensorSpec([batch_size, params.clip_samples],
                                     tf.float32)],
      # XLA fuses the elementwise steps after the FFT (power, log, top_db):
      # ~15% less CPU per note here, same function, same numbers (tested).
      jit_compile=jit_compile)
  return tf, mfcc_fn, windows


# Clips per call of a representation network. Its activations grow with the
# batch (a 64-clip batch held 2.7 GB more than one clip, 16 clips 0.9 GB) and
# its time per clip stops falling at about 8 (BUILD_NOTES.md, "Hear
# faster"), so a batch of notes goes through it in slices of this many.
REPRESENTATION_SLICE = 16

_REPRESENTATION_FUNCTIONS = {}
# The bundle threads of multi_threading mode set up their DoFns at once:
# without it each built and traced its own copy of every network.
_REPRESENTATION_FUNCTIONS_LOCK = threading.Lock()


def _representation_function(loaded: representation_lib.WithWeights,
                             precision: str):
  """A representation's network, built and traced once per process, set of
  weights and precision: every thread's DoFn shares it. Any batch size, so
  that a short batch (a recording's few windows, a bundle's last notes)
  costs its own clips, not a full batch's."""
  key = (loaded.representation, loaded.weights_sha256, precision)
  with _REPRESENTATION_FUNCTIONS_LOCK:
    if key not in _REPRESENTATION_FUNCTIONS:
      import tensorflow as tf
      heard = loaded.representation
      model = heard.build_model(loaded.weights, precision)
      # No XLA: its CPU convolutions ran 2-6x slower than oneDNN's here.
      traced = tf.function(
          lambda clips: model(clips, training=False),
          input_signature=[tf.TensorSpec([None, heard.clip_samples],
                                         tf.float32)])
      _REPRESENTATION_FUNCTIONS[key] = lambda clips: traced(clips).numpy()
    return _REPRESENTATION_FUNCTIONS[key]


def _aligned_zeros(shape: tuple[int, ...], alignment: int = 64) -> np.ndarray:
  """float32 zeros whose data starts on an `alignment`-byte boundary."""
  size = int(np.prod(shape))
  itemsize = np.dtype(np.float32).itemsize
  raw = np.zeros(size + alignment // itemsize, np.float32)
  offset = (-raw.ctypes.data % alignment) // itemsize
  return raw[offset:offset + size].reshape(shape)


class Featurizer:
  """Rows of clips -> FeaturizedBatches, with one worker's feature function.

  Build it in the launcher (it pickles with its DoFn), call `setup()` once in
  the worker, then `featurize(rows)` for at most `batch_size` rows at a time.
  """

  def __init__(self, params: feature_params.FeatureParams, keep_audio: bool,
               batch_size: int, jit_compile: bool,
               augment: augmentation.AugmentationConfig, train_split: str,
               windows: bool = False,
               representations: tuple[representation_lib.WithWeights, ...] = (),
               precision: str = precision_lib.AUTO):
    """Args: precision: what the representation networks run in, one of
    nsynth_contracts.precision.CHOICES, resolved by each worker for its own
    CPU in setup()."""
    for loaded in representations:
      heard = loaded.representation
      if (heard.clip_samples, heard.sample_rate_hz) != (
          params.clip_samples, params.sample_rate_hz):
        raise ValueError(f'{heard.describe()} and the MFCCs must hear the '
                         f'same clip')
    self.params = params
    self.batch_size = batch_size
    self._keep_audio = keep_audio
    self._jit_compile = jit_compile
    self._augment = augment
    self._train_split = train_split
    self._windows = windows
    self._representations = representations
    self._requested_precision = precision_lib.checked_choice(precision)
    self.precision = None          # set by setup(): what this worker runs
    self._representation_fns = {}
    self._mfcc_fn = None
    self._windows_lib = None
    self._clips = None
    self._clips_tensor = None

  def setup(self) -> None:
    """Raises: precision.PrecisionError: bfloat16 asked for on a worker
    whose CPU cannot run it."""
    if self._representations:
      self.precision = precision_lib.resolve(self._requested_precision)
    tf, self._mfcc_fn, self._windows_lib = _worker_functions(
        self.params, self.batch_size, self._jit_compile)
    # Decoded clips go straight into one reused batch array, which the
    # feature function reads in place (DLPack) instead of copying 16 MB per
    # batch; TensorFlow needs its buffers 64-byte aligned.
    self._clips = _aligned_zeros((self.batch_size, self.params.clip_samples))
    self._clips_tensor = tf.experimental.dlpack.from_dlpack(
        self._clips.__dlpack__())
    with cli.native_stderr_silenced():  # XLA's compile-time log lines.
      self._mfcc_fn(self._clips_tensor)
    for loaded in self._representations:
      function = _representation_function(loaded, self.precision)
      function(self._clips[:REPRESENTATION_SLICE])
      self._representation_fns[loaded.representation.key] = function

  def frame(self, waveform: np.ndarray,
            windows: window_params.WindowParams
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """nsynth_contracts.windows.frame_windows, the serving signatures' own
    cut, in NumPy: (clips [W, samples], start seconds [W], sounding [W])."""
    return tuple(t.numpy() for t in self._windows_lib.frame_windows(
        waveform, self.params, windows))

  def rows(self, note: examples_json.Note, clip: np.ndarray) -> list[Row]:
    """The note as read and, in the training split, its augmented copies."""
    rows = [(note, 0, clip)]
    if not self._augment.copies or note.split != self._train_split:
      return rows
    try:
      copies = augmentation.augmented_copies(clip, note.note_str,
                                             self._augment, self.params)
    except Exception:
      # The note itself is still written; only its extra copies are lost.
      accounting.count(outcomes.AUGMENTATION_FAILED_COUNTER)
      return rows
    return rows + [(note, k, c) for k, c in enumerate(copies, start=1)]

  def featurize_all(self, rows: Sequence[Row]) -> Iterator[FeaturizedBatch]:
    """featurize() over any number of rows, a batch at a time."""
    for start in range(0, len(rows), self.batch_size):
      yield from self.featurize(rows[start:start + self.batch_size])

  def featurize(self, rows: Sequence[Row]) -> Iterator[FeaturizedBatch]:
    """One FeaturizedBatch of the rows whose features are finite, and a
    tagged DeadLetter for each note that failed (a failed copy is counted)."""
    count = len(rows)
    for i, (_, _, clip) in enumerate(rows):
      self._clips[i] = clip
    computed = {schema.MFCC: self._computed(
        lambda clips: self._mfcc_fn(clips).numpy(), count)}
    for key, function in self._representation_fns.items():
      computed[key] = self._computed(function, count, whole_batch=False)
    kept = []
    for i, (note, copy, _) in enumerate(rows):
      values = [row[i] for row in computed.values()]
      failed = any(v is None for v in values)
      if not failed and all(np.isfinite(v).all() for v in values):
        kept.append(i)
      elif copy:
        accounting.count(outcomes.AUGMENTATION_FAILED_COUNTER)
      else:
        yield beam.pvalue.TaggedOutput(
            accounting.DEAD_LETTERS, outcomes.DeadLetter(
                note.note_str, note.audio_path, note.split, 'feature_error',
                'the feature function failed on this note' if failed
                else 'its features are not finite'))
    if not kept:
      return
    copies = tuple(rows[i][1] for i in kept)
    stacked = {key: np.stack([values[i] for i in kept])
               for key, values in computed.items()}
    yield FeaturizedBatch(
        tuple(rows[i][0] for i in kept), stacked.pop(schema.MFCC),
        self._clips[kept].copy() if self._keep_audio else None,
        copies if any(copies) else (), self._windows, stacked,
        self.precision)

  def _computed(self, function, count: int, whole_batch: bool = True
                ) -> list[np.ndarray | None]:
    """`function` (clips -> NumPy) of the batch array's first `count` rows:
    given the whole array as a tensor, for functions of one batch shape, or
    those rows REPRESENTATION_SLICE at a time; if the batch fails, each
    clip alone, so that only a bad row is lost (None)."""
    def run(rows: int) -> np.ndarray:
      # Synchronous: the batch array is free to refill once this returns.
      if whole_batch:
        return function(self._clips_tensor)[:rows]
      return np.concatenate([
          function(self._clips[start:min(rows, start + REPRESENTATION_SLICE)])
          for start in range(0, rows, REPRESENTATION_SLICE)])
    try:
      return list(run(count))
    except Exception:  # The batch failed: find the row at fault.
      pass
    clips = self._clips[:count].copy()
    result = []
    for clip in clips:
      self._clips[:] = 0.0
      self._clips[0] = clip
      try:
        result.append(run(1)[0])
      except Exception:  # A row the function cannot take: its note only.
        result.append(None)
    self._clips[:count] = clips
    return result


def no_sound(note: examples_json.Note) -> outcomes.DeadLetter:
  """The dead letter of a note too quiet to name: a record of it would
  teach the model that silence sounds like its family."""
  windows = window_params.DEFAULT_WINDOWS
  return outcomes.DeadLetter(
      note.note_str, note.audio_path, note.split, 'no_sound',
      f'nothing in it stays at or above {windows.silence_threshold_dbfs:g} '
      f'dBFS for {windows.min_sound_frames} frames of '
      f'{windows.sound_frame_samples} samples, and nothing shorter above it '
      f'repeats as a pitch does (a click, a step, a burst of noise, or DC): '
      f'there is no instrument to name')


class FeaturizeNotesFn(beam.DoFn):
  """A batch of Notes -> FeaturizedBatches of the notes whose audio was good
  and of their augmented copies (NOTES); a DeadLetter per bad note
  (DEAD_LETTERS). Each batch done is counted towards the launcher's
  progress display (beam_pipelines.progress), when it shows one."""

  def __init__(self, featurizer: Featurizer,
               progress_address: progress.Address | None = None):
    self._featurizer = featurizer
    self._done = progress.WorkerCounter(progress_address)

  def setup(self):
    self._featurizer.setup()

  def finish_bundle(self):
    # The last count of each bundle, so the display's final figure is whole.
    self._done.send()

  def process(self, notes: list[examples_json.Note]
              ) -> Iterator[FeaturizedBatch]:
    featurizer = self._featurizer
    loaded = [(note, note_audio.load_clip(note, featurizer.params))
              for note in notes]
    good = [(note, clip) for note, clip in loaded
            if not isinstance(clip, outcomes.DeadLetter)]
    for _, clip in loaded:
      if isinstance(clip, outcomes.DeadLetter):
        yield beam.pvalue.TaggedOutput(accounting.DEAD_LETTERS, clip)
    heard = (window_params.sounding_numpy(np.stack([c for _, c in good]))
             if good else [])
    rows = []
    for (note, clip), sounds in zip(good, heard):
      if sounds:
        rows += featurizer.rows(note, clip)
      else:
        yield beam.pvalue.TaggedOutput(accounting.DEAD_LETTERS, no_sound(note))
    yield from featurizer.featurize_all(rows)
    self._done.add(len(notes))


class FeaturizeNotes(beam.PTransform):
  """Notes -> FeaturizedBatches (NOTES) and DeadLetters (DEAD_LETTERS).

  Batches the notes, then reads and validates each note's audio, adds the
  augmented copies of training notes, and computes MFCCs for a whole batch
  with one call of the shared feature function.
  """

  def __init__(self, featurizer: Featurizer,
               progress_address: progress.Address | None = None):
    super().__init__()
    self._featurizer = featurizer
    self._progress_address = progress_address

  def expand(self, notes):
    batch_size = self._featurizer.batch_size
    return (
        notes
        # Fixed-size batches: BatchElements' adaptive sizing settles on 8-18
        # notes here, where the feature function is ~1.5x faster per note at 64.
        | 'Batch' >> beam.BatchElements(min_batch_size=batch_size,
                                        max_batch_size=batch_size)
        | 'Featurize' >> beam.ParDo(FeaturizeNotesFn(
            self._featurizer, self._progress_address)).with_outputs(
                accounting.DEAD_LETTERS, main=accounting.NOTES))
