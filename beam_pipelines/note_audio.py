"""One note's audio: read safely, decoded, or the dead letter saying why not.

Nothing raised while reading, decoding or validating one note escapes: a bad
file costs its own note, never the job. Storage that does not answer is no
fault of the note's: it stops the job (gcs.StorageUnavailableError).
"""

import posixpath

import numpy as np
from apache_beam.io.filesystems import FileSystems

from beam_pipelines import gcs
from nsynth_contracts import audio_decoding
from nsynth_contracts import audio_limits
from nsynth_contracts import examples_json
from nsynth_contracts import feature_params
from nsynth_contracts import file_safety
from nsynth_contracts import outcomes


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
  with file_safety.open_local_file(path, audio_dir, max_bytes) as f:
    try:
      return f.read(max_bytes + 1)
    except OSError as e:
      raise audio_limits.AudioError('unreadable_audio',
                                    e.strerror or type(e).__name__) from None


def _read_remote(path: str, max_bytes: int) -> bytes:
  """Raises gcs.StorageUnavailableError when the store does not answer."""
  try:
    if gcs.is_gcs(path):
      data = gcs.read_bytes(path, max_bytes)
    else:
      with FileSystems.open(path) as f:
        data = f.read(max_bytes + 1)
  except gcs.StorageUnavailableError:
    raise
  except Exception as e:
    if isinstance(e, FileNotFoundError) or not FileSystems.exists(path):
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
) -> np.ndarray | outcomes.DeadLetter:
  """The note's clip, float32 [clip_samples], or the DeadLetter saying why
  not."""
  try:
    data = read_note_file(note.audio_path, posixpath.dirname(note.audio_path))
    return audio_decoding.decode_clip(data, params)
  except audio_limits.AudioError as e:
    kind, reason = e.kind, str(e)
  except gcs.StorageUnavailableError:
    raise
  except Exception as e:
    kind, reason = 'undecodable', f'{type(e).__name__} while decoding'
  return outcomes.DeadLetter(note.note_str, note.audio_path, note.split, kind,
                             reason)
