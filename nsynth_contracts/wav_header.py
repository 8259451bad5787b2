"""Our own check of a RIFF/WAVE header, before any decoder sees the file.

libsndfile is lenient where a training set must not be: it reads a file
whose data chunk is cut short, or whose block align contradicts its channels
and sample width, and says nothing. So a WAV's header is parsed and checked
here first, against the file's real size, without decoding a sample. The
serving graph walks the same chunks with core TensorFlow ops
(serving.wav_graph) and refuses in these same words.
"""

import dataclasses
import struct

from nsynth_contracts import audio_limits
from nsynth_contracts.audio_limits import AudioError

PCM = 1
IEEE_FLOAT = 3
EXTENSIBLE = 0xFFFE
UNKNOWN_SIZE = 0xFFFFFFFF   # streaming writers that never fixed the header
# Real files have a handful of chunks before the audio; walking more is work
# a hostile header asks for (the serving graph walks them one by one).
MAX_CHUNKS = 64

FMT_TOO_SHORT = ('the fmt chunk is shorter than the 16 bytes a WAV header '
                 'needs')
NO_SUBFORMAT = 'WAVE_FORMAT_EXTENSIBLE without its sub-format'
DATA_BEFORE_FMT = 'the data chunk comes before any fmt chunk'
TRUNCATED = 'truncated: the data chunk declares {} bytes but the file holds {}'
TOO_MANY_CHUNKS = f'more than {MAX_CHUNKS} chunks before the audio data'
NO_FMT = 'no fmt chunk'
NO_DATA = 'no data chunk'
FORMAT_TAG = 'WAV format tag {} is not PCM or IEEE float'
WIDTH = '{}-bit {} is not supported'
BLOCK_ALIGN = 'block align {} contradicts {} channel(s) of {} bits'
PARTIAL_FRAME = ('the data chunk ({} bytes) is not a whole number of {}-byte '
                 'frames')
WAV_NO_SAMPLES = 'the WAV holds no samples'
WIDTHS = {PCM: (8, 16, 24, 32), IEEE_FLOAT: (32, 64)}


def is_riff_wave(head: bytes) -> bool:
  return len(head) >= 12 and head[:4] == b'RIFF' and head[8:12] == b'WAVE'


@dataclasses.dataclass(frozen=True)
class WavHeader:
  """The fields of a RIFF/WAVE header that decide how to read it."""
  format_tag: int          # PCM or IEEE_FLOAT (an extensible file's sub-format)
  channels: int
  sample_rate_hz: int
  block_align: int
  bits_per_sample: int
  data_offset: int
  data_bytes: int          # a streaming header: what the file holds

  @property
  def frames(self) -> int:
    return self.data_bytes // self.block_align

  @property
  def encoding(self) -> str:
    """'pcm8', 'pcm16', 'pcm24', 'pcm32', 'float32' or 'float64'."""
    kind = 'float' if self.format_tag == IEEE_FLOAT else 'pcm'
    return f'{kind}{self.bits_per_sample}'


def _read_fmt(payload: bytes) -> tuple[int, int, int, int, int]:
  tag, channels, rate, _, block_align, bits = struct.unpack_from(
      '<HHIIHH', payload)
  if tag == EXTENSIBLE:
    if len(payload) < 26:
      raise AudioError('bad_header', NO_SUBFORMAT)
    tag = struct.unpack_from('<H', payload, 24)[0]  # SubFormat GUID's first.
  return tag, channels, rate, block_align, bits


def read_header(data: bytes,
                limits: audio_limits.AudioLimits = audio_limits.DEFAULT_LIMITS,
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
    raise AudioError('empty_file', audio_limits.EMPTY_FILE)
  if not is_riff_wave(data):
    raise AudioError('not_audio', audio_limits.NOT_AUDIO)
  size_of_file = len(data) if total_size is None else total_size
  fmt = None
  offset = 12
  chunks = 0
  while offset + 8 <= len(data):
    if chunks == MAX_CHUNKS:
      raise AudioError('bad_header', TOO_MANY_CHUNKS)
    chunks += 1
    chunk_id, size = struct.unpack_from('<4sI', data, offset)
    body = offset + 8
    if chunk_id == b'fmt ':
      if size < 16 or body + 16 > len(data):
        raise AudioError('bad_header', FMT_TOO_SHORT)
      fmt = _read_fmt(data[body:body + min(size, 40)])
    elif chunk_id == b'data':
      if fmt is None:
        raise AudioError('bad_header', DATA_BEFORE_FMT)
      available = size_of_file - body
      if size == UNKNOWN_SIZE:
        size = available
      elif size > available:
        raise AudioError('truncated', TRUNCATED.format(size, available))
      return _checked_header(fmt, body, size, limits)
    offset = body + size + (size & 1)  # Chunks are word-aligned.
  if fmt is None:
    raise AudioError('bad_header' if offset > 12 else 'truncated', NO_FMT)
  raise AudioError('truncated', NO_DATA)


def _checked_header(fmt: tuple[int, int, int, int, int], data_offset: int,
                    data_bytes: int,
                    limits: audio_limits.AudioLimits) -> WavHeader:
  tag, channels, rate, block_align, bits = fmt
  if tag not in WIDTHS:
    raise AudioError('unsupported_format', FORMAT_TAG.format(tag))
  if bits not in WIDTHS[tag]:
    raise AudioError('unsupported_format', WIDTH.format(
        bits, 'PCM' if tag == PCM else 'float'))
  audio_limits.check_channels(channels, limits)
  if block_align != channels * bits // 8:
    raise AudioError('bad_header', BLOCK_ALIGN.format(block_align, channels,
                                                      bits))
  if data_bytes % block_align:
    raise AudioError('bad_header', PARTIAL_FRAME.format(data_bytes,
                                                        block_align))
  audio_limits.check_rate(rate, limits)
  if data_bytes == 0:
    raise AudioError('empty_audio', WAV_NO_SAMPLES)
  return WavHeader(tag, channels, rate, block_align, bits, data_offset,
                   data_bytes)
