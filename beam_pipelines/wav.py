"""Decoding and validating one WAV file into the waveform the features expect.

A small RIFF reader in NumPy rather than the `wave` module, because NSynth
mirrors and user data hold more than 16-bit PCM: 8/24/32-bit PCM, IEEE float,
WAVE_FORMAT_EXTENSIBLE. Every failure raises `AudioError` with a reason that
ends up, readable, in the dead-letter file.
"""

from __future__ import annotations

import dataclasses
import io
import struct
import wave

import numpy as np

from nsynth_contracts import feature_params

_PCM = 1
_IEEE_FLOAT = 3
_EXTENSIBLE = 0xFFFE


class AudioError(ValueError):
  """This audio cannot become a training example; the message says why."""

  def __init__(self, kind: str, message: str):
    super().__init__(message)
    self.kind = kind  # Short, stable: used as the dead-letter reason key.


@dataclasses.dataclass(frozen=True)
class DecodedWav:
  samples: np.ndarray     # float32 [frames, channels], in [-1, 1] for PCM
  sample_rate_hz: int
  encoding: str           # e.g. 'pcm16', 'float32'


def _chunks(data: memoryview):
  """Yields (chunk_id, payload, declared_size) of a RIFF/WAVE byte string.

  Payloads are memoryview slices: a 4 s note is 128 KB, and copying it once
  per chunk walk was a measurable share of the job's per-note time.
  """
  offset = 12
  while offset + 8 <= len(data):
    chunk_id, size = struct.unpack_from('<4sI', data, offset)
    yield chunk_id, data[offset + 8:offset + 8 + size], size
    offset += 8 + size + (size & 1)  # Chunks are word-aligned.


def _pcm_to_float(payload: memoryview, bits: int) -> np.ndarray:
  if bits == 8:  # 8-bit WAV is unsigned with 128 as zero.
    return (np.frombuffer(payload, np.uint8).astype(np.float32) - 128.0) / 128.0
  if bits == 16:
    samples = np.frombuffer(payload, '<i2').astype(np.float32)
    samples *= 1.0 / 32768.0  # In place: one 256 KB array per note, not two.
    return samples
  if bits == 24:
    raw = np.frombuffer(payload, np.uint8).reshape(-1, 3).astype(np.int32)
    value = raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)
    value = np.where(value >= 1 << 23, value - (1 << 24), value)
    return value.astype(np.float32) / float(1 << 23)
  if bits == 32:
    return (np.frombuffer(payload, '<i4').astype(np.float64) /
            float(1 << 31)).astype(np.float32)
  raise AudioError('unsupported_format', f'{bits}-bit PCM is not supported')


def decode_wav(data: bytes) -> DecodedWav:
  """Decodes the bytes of a WAV file.

  Raises:
    AudioError: empty or not a WAV, truncated, or an encoding not supported.
  """
  if not data:
    raise AudioError('empty_file', 'the file is empty (0 bytes)')
  if len(data) < 12 or data[:4] != b'RIFF' or data[8:12] != b'WAVE':
    raise AudioError('not_wav',
                     f'not a RIFF/WAVE file (starts with {data[:12]!r})')
  fmt = payload = None
  for chunk_id, chunk, declared in _chunks(memoryview(data)):
    if chunk_id == b'fmt ':
      fmt = bytes(chunk)
    elif chunk_id == b'data':
      if len(chunk) < declared:
        raise AudioError(
            'truncated', f'truncated: the data chunk declares {declared} bytes '
            f'but the file holds {len(chunk)}')
      payload = chunk
      break
  if fmt is None or len(fmt) < 16:
    raise AudioError('not_wav', 'no valid fmt chunk')
  if payload is None:
    raise AudioError('truncated', 'no data chunk')
  tag, channels, rate, _, block_align, bits = struct.unpack_from(
      '<HHIIHH', fmt)
  if tag == _EXTENSIBLE and len(fmt) >= 26:
    tag = struct.unpack_from('<H', fmt, 24)[0]  # SubFormat GUID's first field.
  if channels < 1 or rate < 1 or block_align < 1:
    raise AudioError('not_wav', f'invalid fmt chunk: {channels} channels, '
                     f'{rate} Hz, block align {block_align}')
  payload = payload[:len(payload) // block_align * block_align]
  if tag == _PCM:
    samples = _pcm_to_float(payload, bits)
    encoding = f'pcm{bits}'
  elif tag == _IEEE_FLOAT and bits in (32, 64):
    samples = np.frombuffer(payload, '<f4' if bits == 32 else '<f8').astype(
        np.float32)
    encoding = f'float{bits}'
  else:
    raise AudioError('unsupported_format',
                     f'WAV format tag {tag} with {bits} bits is not supported')
  if samples.size == 0:
    raise AudioError('empty_audio', 'the WAV holds no samples')
  return DecodedWav(samples.reshape(-1, channels), rate, encoding)


def encode_pcm16(waveform: np.ndarray, sample_rate_hz: int) -> bytes:
  """Mono 16-bit PCM WAV bytes, NSynth's own format.

  Args:
    waveform: float [samples]; values beyond [-1, 1] are clipped.
    sample_rate_hz: the rate written into the header.
  """
  pcm = np.round(np.clip(waveform, -1.0, 1.0) * 32767.0).astype('<i2')
  buffer = io.BytesIO()
  with wave.open(buffer, 'wb') as w:
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(sample_rate_hz)
    w.writeframes(pcm.tobytes())
  return buffer.getvalue()


def resample(samples: np.ndarray, rate_in_hz: int,
             rate_out_hz: int) -> np.ndarray:
  """Band-limited resampling with tensorflow-io (float32 [frames, channels]).

  Imported lazily: NSynth itself is all 16 kHz, so most workers never pay for
  loading tensorflow-io's kernels.
  """
  import tensorflow_io as tfio  # pylint: disable=g-import-not-at-top
  return tfio.audio.resample(
      samples, rate_in=rate_in_hz, rate_out=rate_out_hz).numpy()


def to_clip(decoded: DecodedWav,
            params: feature_params.FeatureParams = feature_params.DEFAULT_PARAMS
            ) -> np.ndarray:
  """The mono clip the feature function expects.

  Stereo (or more) is averaged to mono, another sample rate is resampled, and
  the result is padded or trimmed to one clip exactly as the serving signature
  does.

  Returns:
    float32 [params.clip_samples].

  Raises:
    AudioError: NaN or Inf samples.
  """
  samples = decoded.samples
  # Integer PCM cannot hold NaN or Inf; only float encodings need the scan.
  if decoded.encoding.startswith('float') and not np.all(np.isfinite(samples)):
    bad = int(np.size(samples) - np.count_nonzero(np.isfinite(samples)))
    raise AudioError('non_finite', f'{bad} samples are NaN or Inf')
  if decoded.sample_rate_hz != params.sample_rate_hz:
    samples = resample(samples, decoded.sample_rate_hz, params.sample_rate_hz)
  mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
  return feature_params.pad_or_trim_numpy(mono.astype(np.float32), params)
