"""Audio in and out: WAV decoding with validation, WAV encoding, resampling.

Shared by the Beam job (which decodes untrusted notes), the serving tools and
the demo renderer (which write WAVs), so it lives below all three.

Decoding is libsndfile's (through `soundfile`), a decoder built and fuzzed for
untrusted bytes. On top of it sits our own check of the RIFF header, because
libsndfile is lenient where a training set must not be: it reads a file whose
data chunk is cut short, or whose block align contradicts its channels and
sample width, and says nothing. Every problem raises `AudioError` with a
stable `kind` (the dead-letter key) and a reason that never quotes the file's
bytes. The work per file is bounded before anything is allocated: sample
rates, channel counts and sizes outside `AudioLimits` are refused, and only
the first clip's worth of frames is ever decoded.
"""

import dataclasses
import io
import os
import re
import stat
import struct
import wave

import numpy as np

from nsynth_contracts import feature_params

_PCM = 1
_IEEE_FLOAT = 3
_EXTENSIBLE = 0xFFFE
_UNKNOWN_SIZE = 0xFFFFFFFF   # streaming writers that never fixed the header


@dataclasses.dataclass(frozen=True)
class AudioLimits:
  """What a note file may declare before any of it is decoded."""
  min_sample_rate_hz: int = 8_000       # telephone audio; below is no music
  max_sample_rate_hz: int = 384_000
  max_channels: int = 8                 # 7.1 surround
  max_file_bytes: int = 64 * 2**20      # 4 s of 8 x 64-bit at 256 kHz
  # |sample| above this is no waveform in [-1, 1] but a scaling mistake
  # (int16 values in a float WAV, say); the features of such input mean
  # nothing, and past ~1e19 they overflow to NaN.
  max_abs_sample: float = 4.0


DEFAULT_LIMITS = AudioLimits()


class AudioError(ValueError):
  """This audio cannot become a training example; the message says why."""

  def __init__(self, kind: str, message: str):
    super().__init__(message)
    self.kind = kind  # Short, stable: used as the dead-letter reason key.


@dataclasses.dataclass(frozen=True)
class WavHeader:
  """The fields of a RIFF/WAVE header that decide how to read it."""
  format_tag: int
  channels: int
  sample_rate_hz: int
  block_align: int
  bits_per_sample: int
  data_offset: int
  data_bytes: int

  @property
  def frames(self) -> int:
    return self.data_bytes // self.block_align

  @property
  def encoding(self) -> str:
    kind = 'float' if self.format_tag == _IEEE_FLOAT else 'pcm'
    return f'{kind}{self.bits_per_sample}'


@dataclasses.dataclass(frozen=True)
class DecodedWav:
  samples: np.ndarray     # float32 [frames, channels], in [-1, 1] for PCM
  sample_rate_hz: int
  encoding: str           # e.g. 'pcm16', 'float32'


def _read_fmt(payload: bytes) -> tuple[int, int, int, int, int]:
  tag, channels, rate, _, block_align, bits = struct.unpack_from(
      '<HHIIHH', payload)
  if tag == _EXTENSIBLE:
    if len(payload) < 26:
      raise AudioError('bad_header', 'WAVE_FORMAT_EXTENSIBLE without its '
                       'sub-format')
    tag = struct.unpack_from('<H', payload, 24)[0]  # SubFormat GUID's first.
  return tag, channels, rate, block_align, bits


def read_header(data: bytes, limits: AudioLimits = DEFAULT_LIMITS,
                total_size: int | None = None) -> WavHeader:
  """Parses and checks a WAV header without decoding any sample.

  Args:
    data: the file, or (with total_size) its first bytes.
    total_size: the whole file's size, when `data` is only its start.

  Raises:
    AudioError: empty, not RIFF/WAVE, truncated, header fields that
      contradict each other or the data size, or values outside `limits`.
  """
  if not data:
    raise AudioError('empty_file', 'the file is empty (0 bytes)')
  if len(data) < 12 or data[:4] != b'RIFF' or data[8:12] != b'WAVE':
    raise AudioError('not_wav', 'not a RIFF/WAVE file')
  fmt = None
  offset = 12
  while offset + 8 <= len(data):
    chunk_id, size = struct.unpack_from('<4sI', data, offset)
    body = offset + 8
    if chunk_id == b'fmt ':
      if size < 16 or body + 16 > len(data):
        raise AudioError('bad_header', 'the fmt chunk is shorter than the '
                         '16 bytes a WAV header needs')
      fmt = _read_fmt(data[body:body + min(size, 40)])
    elif chunk_id == b'data':
      if fmt is None:
        raise AudioError('bad_header', 'the data chunk comes before any fmt '
                         'chunk')
      available = (len(data) if total_size is None else total_size) - body
      if size == _UNKNOWN_SIZE:
        size = available
      elif size > available:
        raise AudioError('truncated', f'truncated: the data chunk declares '
                         f'{size} bytes but the file holds {available}')
      return _checked_header(fmt, body, size, limits)
    offset = body + size + (size & 1)  # Chunks are word-aligned.
  if fmt is None:
    raise AudioError('bad_header' if offset > 12 else 'truncated',
                     'no fmt chunk')
  raise AudioError('truncated', 'no data chunk')


def _check_channels(channels: int, limits: AudioLimits) -> None:
  if not 1 <= channels <= limits.max_channels:
    raise AudioError('bad_header', f'{channels} channels is outside 1..'
                     f'{limits.max_channels}')


def _check_rate(rate: int, limits: AudioLimits) -> None:
  if not limits.min_sample_rate_hz <= rate <= limits.max_sample_rate_hz:
    raise AudioError('bad_sample_rate', f'sample rate {rate} Hz is outside '
                     f'{limits.min_sample_rate_hz}..'
                     f'{limits.max_sample_rate_hz} Hz')


def _checked_header(fmt: tuple[int, int, int, int, int], data_offset: int,
                    data_bytes: int, limits: AudioLimits) -> WavHeader:
  tag, channels, rate, block_align, bits = fmt
  if tag not in (_PCM, _IEEE_FLOAT):
    raise AudioError('unsupported_format',
                     f'WAV format tag {tag} is not PCM or IEEE float')
  widths = (8, 16, 24, 32) if tag == _PCM else (32, 64)
  if bits not in widths:
    raise AudioError('unsupported_format', f'{bits}-bit '
                     f'{"PCM" if tag == _PCM else "float"} is not supported')
  _check_channels(channels, limits)
  if block_align != channels * bits // 8:
    raise AudioError('bad_header', f'block align {block_align} contradicts '
                     f'{channels} channel(s) of {bits} bits')
  if data_bytes % block_align:
    raise AudioError('bad_header', f'the data chunk ({data_bytes} bytes) is '
                     f'not a whole number of {block_align}-byte frames')
  _check_rate(rate, limits)
  if data_bytes == 0:
    raise AudioError('empty_audio', 'the WAV holds no samples')
  return WavHeader(tag, channels, rate, block_align, bits, data_offset,
                   data_bytes)


# Integer PCM is decoded as integers and scaled here: libsndfile's own
# conversion to float costs ~80 us per 4 s note, this ~10 us (BUILD_NOTES).
# libsndfile widens 8-bit to int16 and 24-bit to int32, left-justified, so
# these scales give exactly its float values.
_DECODE_AS = {
    'pcm8': ('int16', 1.0 / 2**15),
    'pcm16': ('int16', 1.0 / 2**15),
    'pcm24': ('int32', 1.0 / 2**31),
    'pcm32': ('int32', 1.0 / 2**31),
}


def decode_wav(data: bytes, max_seconds: float | None = None,
               limits: AudioLimits = DEFAULT_LIMITS) -> DecodedWav:
  """Decodes WAV bytes with libsndfile after checking the header.

  Args:
    data: the whole file.
    max_seconds: decode at most this much from the start (None: all).
    limits: bounds on what the header may declare.

  Raises:
    AudioError: see `read_header`; also NaN/Inf or out-of-range samples.
  """
  import soundfile  # pylint: disable=g-import-not-at-top
  if len(data) > limits.max_file_bytes:
    raise AudioError('too_large', f'the file is {len(data)} bytes, more than '
                     f'{limits.max_file_bytes}')
  header = read_header(data, limits)
  frames = header.frames
  if max_seconds is not None:
    frames = min(frames, int(np.ceil(max_seconds * header.sample_rate_hz)))
  dtype, scale = _DECODE_AS.get(header.encoding, ('float32', None))
  try:
    with soundfile.SoundFile(io.BytesIO(data)) as f:
      samples = f.read(frames=frames, dtype=dtype, always_2d=True)
  except (RuntimeError, ValueError, TypeError) as e:
    # libsndfile's messages are its own words, never the file's bytes.
    raise AudioError('undecodable', f'libsndfile cannot decode it: '
                     f'{_libsndfile_reason(e)}') from None
  if samples.shape != (frames, header.channels):
    raise AudioError('truncated', f'libsndfile decoded {samples.shape[0]} of '
                     f'the {frames} frames the header declares')
  if scale is not None:
    samples = samples.astype(np.float32)
    samples *= scale
  check_samples(samples, header.encoding, limits)
  return DecodedWav(samples, header.sample_rate_hz, header.encoding)


def _libsndfile_reason(error: Exception) -> str:
  # "Error opening <_io.BytesIO object at 0x...>: Format not recognised."
  return str(error).rsplit(': ', 1)[-1].strip() or type(error).__name__


def check_samples(samples: np.ndarray, encoding: str,
                  limits: AudioLimits = DEFAULT_LIMITS) -> None:
  """Refuses NaN/Inf and magnitudes no waveform in [-1, 1] would have."""
  if not encoding.startswith('float'):
    return  # Integer PCM cannot hold NaN, Inf, or values beyond full scale.
  finite = np.isfinite(samples)
  if not finite.all():
    bad = int(samples.size - np.count_nonzero(finite))
    raise AudioError('non_finite', f'{bad} samples are NaN or Inf')
  peak = float(np.max(np.abs(samples))) if samples.size else 0.0
  if peak > limits.max_abs_sample:
    raise AudioError('out_of_range', f'samples reach {peak:.3g}; a waveform '
                     f'must lie in [-1, 1] (at most '
                     f'{limits.max_abs_sample:g} is accepted)')


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


def to_mono(samples: np.ndarray, rate_in_hz: int,
            params: feature_params.FeatureParams = feature_params.DEFAULT_PARAMS
            ) -> np.ndarray:
  """float32 [frames, channels] at any rate -> float32 [samples] at the
  features' rate: channels averaged, then resampled."""
  mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
  mono = mono.astype(np.float32)
  if rate_in_hz != params.sample_rate_hz:
    mono = resample(mono[:, np.newaxis], rate_in_hz,
                    params.sample_rate_hz)[:, 0]
  return mono


def to_clip(decoded: DecodedWav,
            params: feature_params.FeatureParams = feature_params.DEFAULT_PARAMS
            ) -> np.ndarray:
  """The mono clip the feature function expects.

  Stereo (or more) is averaged to mono, another sample rate is resampled, and
  the result is padded or trimmed to one clip exactly as the serving signature
  does.

  Returns:
    float32 [params.clip_samples].
  """
  check_samples(decoded.samples, decoded.encoding)
  mono = to_mono(decoded.samples, decoded.sample_rate_hz, params)
  return feature_params.pad_or_trim_numpy(mono, params)


def clip_from_wav(data: bytes,
                  params: feature_params.FeatureParams = (
                      feature_params.DEFAULT_PARAMS),
                  limits: AudioLimits = DEFAULT_LIMITS) -> np.ndarray:
  """WAV bytes -> float32 [params.clip_samples]: decodes only one clip."""
  return to_clip(decode_wav(data, params.clip_seconds, limits), params)


# What users' recordings come as; tensorflow-io decodes each.
RECORDING_SUFFIXES = ('.wav', '.flac', '.ogg', '.mp3')
# A recording's file may be larger than a note's, but not without end.
MAX_RECORDING_BYTES = 2**31


def checked_local_file(path: str, inside: str | None = None,
                       max_bytes: int | None = None) -> tuple[str, int]:
  """(the real path, its size) of a file that is safe to read.

  It must be a regular file (a FIFO or a device could block or never end),
  inside `inside` after following links when given (a link out of a
  dataset could point at any file of the machine's), and no larger than
  `max_bytes`.

  Raises:
    AudioError: with a kind and a reason that never quotes the file.
  """
  def reason(error: OSError) -> str:
    return error.strerror or type(error).__name__
  try:
    os.lstat(path)
  except FileNotFoundError:
    raise AudioError('missing_audio', 'file does not exist') from None
  except (OSError, ValueError) as e:
    raise AudioError('unreadable_audio', reason(e) if isinstance(e, OSError)
                     else 'not a usable path') from None
  real = os.path.realpath(path)
  if inside is not None:
    root = os.path.realpath(inside)
    if os.path.commonpath([real, root]) != root:
      raise AudioError('outside_dataset', f'a link to a file outside '
                       f'{inside}; links that leave the dataset are not '
                       f'followed')
  try:
    info = os.stat(real)
  except FileNotFoundError:
    raise AudioError('missing_audio', 'a link to a file that does not '
                     'exist') from None
  except OSError as e:
    raise AudioError('unreadable_audio', reason(e)) from None
  if not stat.S_ISREG(info.st_mode):
    raise AudioError('not_a_file', 'not a regular file (a directory, FIFO '
                     'or device)')
  if max_bytes is not None and info.st_size > max_bytes:
    raise AudioError('too_large', f'the file is {info.st_size} bytes, more '
                     f'than {max_bytes}')
  return real, info.st_size


def _check_recording_header(path: str, size: int, max_seconds: float | None,
                            limits: AudioLimits = DEFAULT_LIMITS) -> None:
  """Refuses a recording whose header the decoders must not be given.

  tensorflow-io aborts the whole process on a WAV header that declares more
  data than there is, so a WAV's header gets our own check first, against
  the file's real size; every format's header is then read by libsndfile
  (built and fuzzed for untrusted files) and its rate, channels and length
  checked before anything is decoded.
  """
  import soundfile  # pylint: disable=g-import-not-at-top
  with open(path, 'rb') as f:
    head = f.read(2**20)  # a header, and any chunks before the data
  if head[:4] == b'RIFF' and head[8:12] == b'WAVE':
    read_header(head, limits, total_size=size)
  try:
    info = soundfile.info(path)
  except (RuntimeError, ValueError, TypeError) as e:
    raise AudioError('undecodable', f'cannot decode it as WAV, FLAC, OGG or '
                     f'MP3 ({_libsndfile_reason(e)})') from None
  _check_declared(info.frames, info.channels, info.samplerate, max_seconds,
                  limits)


def _check_declared(frames: int, channels: int, rate: int,
                    max_seconds: float | None,
                    limits: AudioLimits = DEFAULT_LIMITS) -> None:
  """Refuses shapes of audio no recording of ours has (before decoding)."""
  if frames <= 0:
    raise AudioError('empty_audio', 'the file holds no samples')
  _check_channels(channels, limits)
  _check_rate(rate, limits)
  if max_seconds is not None and frames > max_seconds * rate:
    raise AudioError('too_long', f'{frames / rate:.1f} s is longer than '
                     f'{max_seconds:g} s')


def read_recording(path: str,
                   params: feature_params.FeatureParams = (
                       feature_params.DEFAULT_PARAMS),
                   max_seconds: float | None = None,
                   inside: str | None = None) -> np.ndarray:
  """A recording in any of RECORDING_SUFFIXES' formats, any sample rate,
  mono or not, as float32 [samples] at the features' rate, in [-1, 1].

  Decoded with tensorflow-io (its AudioIOTensor reads WAV, FLAC, OGG Vorbis
  and MP3), averaged to mono and resampled with tfio.audio.resample.

  Args:
    inside: when given, the file must lie inside this directory (links
      followed), as a dataset's files must.

  Raises:
    AudioError: the file is not a regular file (or lies outside `inside`),
      its header is implausible, it cannot be decoded, is empty, longer than
      max_seconds (checked before decoding), or holds NaN/Inf or values far
      outside [-1, 1].
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_io as tfio  # pylint: disable=g-import-not-at-top
  real, size = checked_local_file(path, inside, MAX_RECORDING_BYTES)
  _check_recording_header(real, size, max_seconds)
  path = real
  try:
    audio_io = tfio.audio.AudioIOTensor(path)
    frames, channels = (int(d) for d in audio_io.shape)
    rate = int(audio_io.rate.numpy())
  except (tf.errors.OpError, ValueError, TypeError) as e:
    # TensorFlow's wrapping ({{function_node ...}}, [Op:...]) and the path
    # (the caller names the file) are no help to a person.
    reason = re.sub(r'\{\{[^}]*\}\}|\[Op:[^\]]*\]', '',
                    getattr(e, 'message', '') or '').replace(path, '')
    reason = (reason.strip().splitlines() or [type(e).__name__])[0]
    reason = reason.strip(' :;')
    raise AudioError('undecodable', f'cannot decode it as WAV, FLAC, OGG or '
                     f'MP3 ({reason[:120] or type(e).__name__})') from None
  # What tensorflow-io is about to decode, checked again in its own terms.
  _check_declared(frames, channels, rate, max_seconds)
  samples = audio_io.to_tensor().numpy()
  if samples.dtype == np.uint8:  # 8-bit WAV: unsigned, 128 is zero
    samples = (samples.astype(np.float32) - 128.0) / 128.0
  elif samples.dtype == np.int16:
    samples = samples.astype(np.float32) / 32768.0
  elif samples.dtype == np.int32:
    samples = samples.astype(np.float32) / 2.0**31
  samples = samples.astype(np.float32)
  check_samples(samples, 'float32')
  mono = samples.mean(axis=1)
  if rate != params.sample_rate_hz:
    mono = tfio.audio.resample(mono, rate_in=rate,
                               rate_out=params.sample_rate_hz).numpy()
  return mono.astype(np.float32)
