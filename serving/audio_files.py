"""The user's audio files, read as an export's contract says.

nsynth-predict and nsynth-client decode every file with
nsynth_contracts.audio_decoding, the Beam job's decoder, at the rate of the
export they call (its contract), never at this project's default: an export
made with other parameters gets the audio it was made for.
"""

import dataclasses
import os
from collections.abc import Iterable

import numpy as np

from nsynth_contracts import audio_decoding
from nsynth_contracts import audio_limits
from nsynth_contracts import file_safety
from nsynth_contracts import serving_contract


def audio_files(paths: Iterable[str]) -> list[str]:
  """The files to predict: each named file, and the recordings under each
  named directory (broken links included: they get their own error). A
  directory with none is listed itself, to be reported, not skipped."""
  found = []
  for path in paths:
    if os.path.isdir(path):
      inside = [os.path.join(root, n)
                for root, _, names in sorted(os.walk(path))
                for n in sorted(names)
                if n.lower().endswith(audio_decoding.RECORDING_SUFFIXES)]
      found += inside or [path]
    else:
      found.append(path)  # Missing or unreadable: reported in its own row.
  return found


def read_samples(path: str, sample_rate_hz: int,
                 max_seconds: float) -> np.ndarray | str:
  """The recording, float32 [samples] at `sample_rate_hz`, or the reason it
  cannot be read, in the decoder's words (never a traceback)."""
  if os.path.isdir(path):   # only a directory named with no audio in it
    return f'a directory with no {audio_limits.FORMATS} file'
  try:
    return audio_decoding.read_file(path, sample_rate_hz,
                                    max_seconds=max_seconds).samples
  except audio_limits.AudioError as e:
    return str(e)


def decode(path: str, sample_rate_hz: int,
           max_seconds: float) -> audio_decoding.DecodedAudio:
  """The file decoded as the Beam job and nsynth-predict decode it.

  Raises:
    audio_limits.AudioError: what the decoder refuses, in its words.
  """
  return audio_decoding.read_file(path, sample_rate_hz,
                                  max_seconds=max_seconds)


def wav_bytes(path: str, decoded: audio_decoding.DecodedAudio,
              contract: serving_contract.ServingContract) -> bytes | None:
  """The file's bytes, when the export's WAV signatures decode them to the
  samples the decoder gave (its encoding and rate are ones the graph
  decodes); else None, and the samples are sent."""
  header = decoded.wav
  if header is None or not contract.accepts_wav(header.encoding,
                                                decoded.source_rate_hz):
    return None
  # Up to the end of the audio data: what follows is no business of the
  # server's (and a streaming header's size is resolved by the length).
  with file_safety.open_local_file(path) as f:
    return f.read(header.data_offset + header.data_bytes)


@dataclasses.dataclass(frozen=True)
class LocalAudio:
  """A file as a client sends it to a server."""
  samples: np.ndarray     # float32 [samples], mono, at the export's rate
  wav: bytes | None       # its bytes, when the export's WAV signatures
                          # decode them to `samples` themselves


def read_for_server(path: str, contract: serving_contract.ServingContract
                    ) -> LocalAudio:
  """decode and wav_bytes, for the export of `contract`.

  Raises:
    audio_limits.AudioError: what the decoder refuses, in its words.
  """
  decoded = decode(path, contract.feature_params.sample_rate_hz,
                   contract.windows.max_seconds)
  return LocalAudio(decoded.samples, wav_bytes(path, decoded, contract))
