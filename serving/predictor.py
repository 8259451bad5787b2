"""An export's signatures on local files, no server needed.

The export is loaded with tf.saved_model.load, and its own contract
(serving.signatures.read_contract) says how files are prepared for it:
the rate they are decoded at, what counts as a note (one clip, answered by
`serving_default` in batches) and what as a recording (answered by
`serving_long_audio`, window by window and as a whole), and how long a
recording may be. nsynth-predict is its command.
"""

import posixpath
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from nsynth_contracts import feature_params
from serving import audio_files
from serving import results
from serving import signatures
from serving import versions


class ModelNotFoundError(ValueError):
  """A path holds no usable export; the message says what is there."""


def resolve_export(path: str) -> str:
  """A version directory: `path` itself, or its newest integer version.

  Raises:
    ModelNotFoundError: `path` is missing, or holds no export.
  """
  # tf.io.gfile, not os.path: the model may be on gs:// as TF Serving's is.
  if not tf.io.gfile.exists(path):
    raise ModelNotFoundError(f'{path} does not exist')
  if tf.io.gfile.exists(posixpath.join(path, 'saved_model.pb')):
    return path
  if not tf.io.gfile.isdir(path):
    raise ModelNotFoundError(f'{path} is a file, not an export directory')
  found = versions.existing_versions(path)
  if not found:
    raise ModelNotFoundError(f'{path} holds neither saved_model.pb nor '
                             f'integer version directories')
  return posixpath.join(path, str(found[-1]))


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
    self.recordings = {}   # file -> (waveform, outputs), for a timeline plot

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

  def _recording(self, file, waveform) -> results.Prediction:
    try:
      outputs = self._serve_recording(audio=tf.constant(waveform))
    except tf.errors.InvalidArgumentError as e:
      return results.Prediction(file, error=results.readable_error(e.message))
    outputs = {k: v.numpy() for k, v in outputs.items()}
    self.recordings[file] = (waveform, outputs)
    return results.recording_prediction(
        file, len(waveform) / self._params.sample_rate_hz, outputs,
        self._top_k)

  def predict(self, files: Sequence[str]) -> list[results.Prediction]:
    """One Prediction per file, in order; unreadable files get an error."""
    read = {f: audio_files.read_samples(f, self._params.sample_rate_hz,
                                        self.contract.windows.max_seconds)
            for f in files}
    predicted = {}
    notes = [f for f in files if not isinstance(read[f], str)
             and len(read[f]) <= self._params.clip_samples]
    if notes:
      clips = np.stack([feature_params.pad_or_trim_numpy(read[f],
                                                         self._params)
                        for f in notes])
      predicted.update((p.file, p) for p in self._notes(notes, clips))
    for f in files:
      if not isinstance(read[f], str) and f not in predicted:
        predicted[f] = self._recording(f, read[f])
    return [predicted.get(f) or results.Prediction(f, error=read[f])
            for f in files]
