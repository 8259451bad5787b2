"""An export's signatures on local files, no server needed.

The export is loaded with tf.saved_model.load, and its own contract
(serving.signatures.read_contract) says how files are prepared for it:
the rate they are decoded at, what counts as a note (one clip, answered by
`serving_default` in batches) and what as a recording (answered by
`serving_long_audio`, window by window and as a whole), and how long a
recording may be. nsynth-predict is its command.
"""

import posixpath
from collections.abc import Callable
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
from google.protobuf.message import DecodeError

from nsynth_contracts import feature_params
from serving import audio_files
from serving import results
from serving import signatures
from serving import versions

# Told of each recording answered: (file, waveform float32 [samples],
# the long-audio signature's outputs as NumPy).
OnRecording = Callable[[str, np.ndarray, dict], None]


class ModelNotFoundError(ValueError):
  """A path holds no usable export; the message says what is there."""


# What loading a damaged SavedModel raises: a truncated or corrupt
# saved_model.pb (protobuf's DecodeError), missing variables, a graph
# TensorFlow cannot import.
_LOAD_ERRORS = (DecodeError, OSError, ValueError, KeyError, RuntimeError,
                TypeError, tf.errors.OpError)


def resolve_export(path: str) -> str:
  """A version directory: `path` itself, or its newest complete version.

  Raises:
    ModelNotFoundError: `path` is missing, or holds no export.
  """
  return _candidates(path)[0][0]


def _candidates(path: str) -> tuple[list[str], list[str]]:
  """(version directories to try, newest first; those skipped, each with
  why). `path` itself when it holds saved_model.pb.

  Raises:
    ModelNotFoundError: `path` is missing, or holds no complete export.
  """
  # tf.io.gfile, not os.path: the model may be on gs:// as TF Serving's is.
  if not tf.io.gfile.exists(path):
    raise ModelNotFoundError(f'{path} does not exist')
  if tf.io.gfile.exists(posixpath.join(path, versions.SAVED_MODEL)):
    return [path], []
  if not tf.io.gfile.isdir(path):
    raise ModelNotFoundError(f'{path} is a file, not an export directory')
  complete, incomplete = versions.newest_first(path)
  newest = complete[0] if complete else None
  skipped = [f'{d} has no {versions.SAVED_MODEL} (an export still being '
             f'copied, or one that failed)' for d in incomplete
             if newest is None or _number(d) > _number(newest)]
  if not complete:
    raise ModelNotFoundError(
        f'{path} holds neither {versions.SAVED_MODEL} nor a complete integer '
        f'version directory' + (f' ({"; ".join(skipped)})' if skipped else
                                ''))
  return complete, skipped


def _number(version_dir: str) -> int:
  return int(posixpath.basename(version_dir))


def load_newest(path: str, top_k: int = 3, precision: str = 'float32'
                ) -> tuple['Predictor', list[str]]:
  """A Predictor of the newest version of `path` that loads, and a line per
  newer version skipped (no saved_model.pb, or one that cannot be loaded).
  `precision` is the Predictor's.

  Raises:
    ModelNotFoundError: no version loads; the message names each and why.
    serving_contract.ContractError: the version loaded carries no contract.
  """
  candidates, skipped = _candidates(path)
  for export_dir in candidates:
    try:
      return Predictor(export_dir, top_k, precision), skipped
    except _LOAD_ERRORS as e:
      reason = (str(e).strip().splitlines() or [''])[0][:200]
      skipped.append(f'{export_dir} cannot be loaded ({type(e).__name__}'
                     + (f': {reason}' if reason else '') + ')')
  raise ModelNotFoundError(f'{path}: no version can be loaded: '
                           + '; '.join(skipped))


class Predictor:
  """The export's signatures on decoded recordings, isolating failures."""

  def __init__(self, export_dir: str, top_k: int = 3,
               precision: str = 'float32'):
    """Loads the export and reads its contract.

    Args:
      precision: a resolved nsynth_contracts.precision choice: bfloat16
        calls the signatures' bfloat16 twins where the export has them
        (`self.precision` says what is used).

    Raises:
      serving_contract.ContractError: the export carries no contract.
    """
    loaded = tf.saved_model.load(export_dir)
    self.contract = signatures.read_contract(loaded, export_dir)
    if signatures.in_precision(signatures.AUDIO_SIGNATURE,
                               precision) not in loaded.signatures:
      precision = 'float32'    # an export of a model that reads MFCCs only
    self.precision = precision
    self._serve_notes = loaded.signatures[signatures.in_precision(
        signatures.AUDIO_SIGNATURE, precision)]
    self._serve_recording = loaded.signatures[signatures.in_precision(
        signatures.LONG_AUDIO_SIGNATURE, precision)]
    self._params = self.contract.feature_params
    self._top_k = top_k

  def _notes(self, files, clips) -> list[results.Prediction]:
    try:
      outputs = self._serve_notes(audio=tf.constant(clips))
    except tf.errors.InvalidArgumentError as e:
      if len(files) == 1:
        return [results.Prediction(files[0],
                                   error=results.readable_error(e.message))]
      # One bad file fails the batch: find it, keep the rest.
      return [p for f, c in zip(files, clips)
              for p in self._notes([f], c[None])]
    return results.predictions_from_outputs(
        files, outputs[signatures.PROBABILITIES].numpy(),
        outputs[signatures.CLASSES].numpy(), self._top_k)

  def _recording(self, file, waveform,
                 on_recording: OnRecording | None) -> results.Prediction:
    try:
      outputs = self._serve_recording(audio=tf.constant(waveform))
    except tf.errors.InvalidArgumentError as e:
      return results.Prediction(file, error=results.readable_error(e.message))
    outputs = {k: v.numpy() for k, v in outputs.items()}
    if on_recording:
      on_recording(file, waveform, outputs)
    return results.recording_prediction(
        file, len(waveform) / self._params.sample_rate_hz, outputs,
        self._top_k)

  def predict(self, files: Sequence[str],
              on_recording: OnRecording | None = None
              ) -> list[results.Prediction]:
    """One Prediction per file, in order; unreadable files get an error.

    Memory holds the notes of `files` (one clip each) and one recording at a
    time: each recording is answered as soon as it is decoded, given with
    its outputs to `on_recording` (a timeline plot), and dropped.
    """
    predicted, notes, clips = {}, [], []
    for f in files:
      samples = audio_files.read_samples(f, self._params.sample_rate_hz,
                                         self.contract.windows.max_seconds)
      if isinstance(samples, str):
        predicted[f] = results.Prediction(f, error=samples)
      elif len(samples) <= self._params.clip_samples:
        notes.append(f)
        clips.append(feature_params.pad_or_trim_numpy(samples, self._params))
      else:
        predicted[f] = self._recording(f, samples, on_recording)
    if notes:
      predicted.update((p.file, p) for p in self._notes(notes,
                                                        np.stack(clips)))
    return [predicted[f] for f in files]
