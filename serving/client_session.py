"""One run of nsynth-client: files decoded, the served export's contract
read, then notes sent together and each recording alone.

Every file is decoded before any request, so that one the decoder refuses
costs the server nothing. The served export's contract then says how files
are to be prepared; they were decoded at this project's feature rate and
length limit, which an export made with them (every export so far) reuses,
and an export of another rate or limit gets them decoded again for it.
"""

import dataclasses
from collections.abc import Sequence

import numpy as np

from nsynth_contracts import audio_decoding
from nsynth_contracts import audio_limits
from nsynth_contracts import feature_params
from nsynth_contracts import serving_contract
from nsynth_contracts import window_params
from serving import audio_files
from serving import results
from serving import signatures
from serving import tf_serving
from serving.replies import ServerError

_FIRST_RATE_HZ = feature_params.DEFAULT_PARAMS.sample_rate_hz
_FIRST_MAX_SECONDS = window_params.DEFAULT_WINDOWS.max_seconds


class FileError(ValueError):
  """A local file the decoder refuses; the message names it."""


def _decode_all(files: Sequence[str], sample_rate_hz: int,
                max_seconds: float) -> dict[str, audio_decoding.DecodedAudio]:
  decoded = {}
  for path in files:
    try:
      decoded[path] = audio_files.decode(path, sample_rate_hz, max_seconds)
    except audio_limits.AudioError as e:
      raise FileError(f'{path}: {e}') from None
  return decoded


@dataclasses.dataclass(frozen=True)
class Session:
  """Where the export is served, and how to ask it."""
  protocol: str                  # 'rest' or 'grpc'
  host: str
  port: int
  model_name: str
  version: int | None = None
  timeout: float = 30.0

  @property
  def where(self) -> str:
    return f'TF Serving at {self.host}:{self.port}'

  def decode_first(self, files: Sequence[str]
                   ) -> dict[str, audio_decoding.DecodedAudio]:
    """Every file, decoded before any request.

    Raises:
      FileError: the first file the decoder refuses, in its words.
    """
    return _decode_all(files, _FIRST_RATE_HZ, _FIRST_MAX_SECONDS)

  def contract(self) -> serving_contract.ServingContract:
    """The served export's contract.

    Raises:
      ServerError: naming the server; an export without a contract is told
        to be exported again.
    """
    fetch = (tf_serving.contract_rest if self.protocol == 'rest'
             else tf_serving.contract_grpc)
    try:
      return fetch(self.host, self.port, self.model_name, self.version,
                   self.timeout)
    except ServerError as e:
      hint = ('; an export made before exports carried their contract must '
              'be exported again with nsynth-export'
              if signatures.CONTRACT_SIGNATURE in str(e) else '')
      raise ServerError(f'{self.where}: {e}{hint}') from None

  def _call(self, inputs, max_windows: int) -> dict[str, np.ndarray]:
    predict = (tf_serving.predict_rest if self.protocol == 'rest'
               else tf_serving.predict_grpc)
    try:
      return predict(self.host, self.port, self.model_name, inputs,
                     self.version, self.timeout, max_windows=max_windows)
    except ServerError as e:
      raise ServerError(f'{self.where}: {e}') from None

  def predict(self, files: Sequence[str],
              decoded: dict[str, audio_decoding.DecodedAudio],
              top_k: int) -> list[results.Prediction]:
    """One Prediction per file, in order, as the served export answers.

    Args:
      decoded: decode_first's result.

    Raises:
      ServerError: the server failed or answered nonsense, naming it.
      FileError: a file the export's own limits refuse.
    """
    contract = self.contract()
    params = contract.feature_params
    if (params.sample_rate_hz, contract.windows.max_seconds) != (
        _FIRST_RATE_HZ, _FIRST_MAX_SECONDS):
      decoded = _decode_all(files, params.sample_rate_hz,
                            contract.windows.max_seconds)
    audio = {f: audio_files.LocalAudio(
        decoded[f].samples, audio_files.wav_bytes(f, decoded[f], contract))
             for f in files}
    predictions = self._notes(
        [f for f in files if len(audio[f].samples) <= params.clip_samples],
        audio, contract, top_k)
    for f in files:
      if f not in predictions:  # A recording: one request each.
        # One window more than the client counts: the export cuts the
        # audio it resampled itself, which may end a sample longer.
        outputs = self._call(audio[f].wav or audio[f].samples, min(
            contract.max_windows(), 1 + contract.windows.num_windows(
                len(audio[f].samples), params)))
        predictions[f] = results.recording_prediction(
            f, len(audio[f].samples) / params.sample_rate_hz, outputs, top_k)
    return [predictions[f] for f in files]

  def _notes(self, notes: list[str], audio: dict[str, audio_files.LocalAudio],
             contract: serving_contract.ServingContract,
             top_k: int) -> dict[str, results.Prediction]:
    """Notes in two requests at most: those sent as WAV bytes, and those
    sent as float clips of the export's length."""
    predictions = {}
    for group in ([f for f in notes if audio[f].wav is not None],
                  [f for f in notes if audio[f].wav is None]):
      if not group:
        continue
      inputs = ([audio[f].wav for f in group] if audio[group[0]].wav
                else np.stack([feature_params.pad_or_trim_numpy(
                    audio[f].samples, contract.feature_params)
                               for f in group]))
      outputs = self._call(inputs, contract.max_windows())
      predictions.update((p.file, p) for p in results.predictions_from_outputs(
          group, outputs[signatures.PROBABILITIES],
          outputs[signatures.CLASSES], top_k))
    return predictions
