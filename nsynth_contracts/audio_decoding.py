"""The one audio decoder: a file's bytes -> the mono waveform the model hears.

The Beam job (notes and --recordings), nsynth-predict and nsynth-client all
call `decode` (or `read_file`, which opens a local file safely first), so a
file gets the same samples, or the same refusal in the same words, at every
entry point:

  1. The format is told by the file's first bytes, never by its name: WAV,
     FLAC, OGG or MP3. Anything else is refused before a decoder sees it.
  2. A WAV's header gets our own check first (wav_header), against the
     file's real size.
  3. libsndfile (`soundfile`) decodes all four formats: a decoder built and
     fuzzed for untrusted bytes. Its view of the rate, channels and length is
     checked against our limits before a sample is decoded.
  4. Only what is needed is decoded, block by block: the first clip of a
     note; a recording up to `max_seconds` (longer is refused from the
     header, and a header that understates is caught when the blocks run
     past the limit). Memory holds the output, never hours of input.
  5. Channels are averaged (`mix_channels`), each turned first to the
     polarity of the loudest where it is its opposite, so that channels in
     anti-phase add up instead of cancelling; another rate is resampled with
     soxr, streamed.
     soxr's HQ filter is 45x faster than tensorflow-io's resample and its
     error against an ideal resampling is -74 dB, where tensorflow-io's is
     -23 dB after its 2 ms delay (BUILD_NOTES).

Needs no TensorFlow.
"""

import contextlib
import dataclasses
import io
from typing import BinaryIO

import numpy as np

from nsynth_common import native_stderr
from nsynth_contracts import audio_limits
from nsynth_contracts import feature_params
from nsynth_contracts import file_safety
from nsynth_contracts import wav_header
from nsynth_contracts.audio_limits import AudioError

# What users' recordings are named; the content decides how they are read.
RECORDING_SUFFIXES = ('.wav', '.flac', '.ogg', '.mp3')
HEAD_BYTES = 2**20          # a WAV header, and any chunks before its data
BLOCK_FRAMES = 2**17        # decoded at a time: 4 MB at 8 float channels;
                            # channels are mixed a block at a time
# A channel whose correlation with the loudest one is below this is in
# anti-phase with it: averaged as it is, it would cancel what both hold.
ANTI_PHASE_CORRELATION = -0.5
RESAMPLE_QUALITY = 'HQ'

UNDECODABLE = 'cannot decode its {} data'
SHORT_READ = 'libsndfile decoded {} of the {} frames the file declares'
# Where a Vorbis stream's last page, which states its length, is looked for.
_OGG_TAIL_BYTES = 2**16
TOO_SHORT = 'shorter than one sample at {} Hz'

_MAGIC = ((b'fLaC', 'FLAC'), (b'OggS', 'OGG'), (b'ID3', 'MP3'))

# Integer PCM is decoded as integers and scaled here: libsndfile's own
# conversion to float costs ~80 us per 4 s note, this ~10 us (BUILD_NOTES).
# libsndfile widens 8-bit to int16 and 24-bit to int32, left-justified, so
# these scales give exactly its float values.
_READ_AS = {
    'pcm8': ('int16', 1.0 / 2**15),
    'pcm16': ('int16', 1.0 / 2**15),
    'pcm24': ('int32', 1.0 / 2**31),
    'pcm32': ('int32', 1.0 / 2**31),
}


def sniff(head: bytes) -> str | None:
  """'WAV', 'FLAC', 'OGG' or 'MP3' from a file's first bytes, else None."""
  if wav_header.is_riff_wave(head):
    return 'WAV'
  for magic, name in _MAGIC:
    if head.startswith(magic):
      return name
  # An MPEG audio frame without an ID3 tag: 11 sync bits and a valid layer.
  if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and (
      head[1] & 0x06):
    return 'MP3'
  return None


@dataclasses.dataclass(frozen=True)
class DecodedAudio:
  samples: np.ndarray      # float32 [samples], mono, at sample_rate_hz
  sample_rate_hz: int
  source_rate_hz: int
  channels: int
  container: str           # 'WAV', 'FLAC', 'OGG' or 'MP3'
  wav: wav_header.WavHeader | None = None   # a WAV's checked header

  @property
  def seconds(self) -> float:
    return len(self.samples) / self.sample_rate_hz


def _size(file: BinaryIO) -> int:
  file.seek(0, io.SEEK_END)
  size = file.tell()
  file.seek(0)
  return size


def decode(source: bytes | BinaryIO, sample_rate_hz: int, *,
           max_seconds: float | None = None,
           first_seconds: float | None = None,
           limits: audio_limits.AudioLimits = audio_limits.DEFAULT_LIMITS
           ) -> DecodedAudio:
  """A file's audio as float32 mono samples at `sample_rate_hz`.

  Args:
    source: the file's bytes, or a seekable binary file.
    sample_rate_hz: the rate the caller's model hears.
    max_seconds: refuse a longer recording (None: any length).
    first_seconds: decode only this much from the start (a note).
    limits: bounds on what the file may declare and hold.

  Raises:
    AudioError: not one of the four formats, a header that is implausible
      or contradicts the file, undecodable or truncated data, no samples,
      longer than max_seconds, NaN/Inf or samples far outside [-1, 1].
  """
  file = (io.BytesIO(source) if isinstance(source, (bytes, bytearray))
          else source)
  size = _size(file)
  if not size:
    raise AudioError('empty_file', audio_limits.EMPTY_FILE)
  head = file.read(HEAD_BYTES)
  file.seek(0)
  container = sniff(head)
  if container is None:
    raise AudioError('not_audio', audio_limits.NOT_AUDIO)
  header = (wav_header.read_header(head, limits, total_size=size)
            if container == 'WAV' else None)
  vorbis_frames = (_vorbis_frames(file, head, size) if container == 'OGG'
                   else None)
  # libmpg123 (inside libsndfile) prints resync notes about damaged MP3
  # data straight to the process's stderr, and libsndfile has no switch.
  quiet = (native_stderr.discarded() if container == 'MP3'
           else contextlib.nullcontext())
  import soundfile
  try:
    with quiet, soundfile.SoundFile(file) as sound:
      return _decoded(sound, container, header, vorbis_frames,
                      sample_rate_hz, max_seconds, first_seconds, limits)
  except (RuntimeError, ValueError, TypeError) as e:
    if isinstance(e, AudioError):
      raise
    # libsndfile's own words can mislead ("File does not exist" for damaged
    # MPEG data), and never add what a person could act on.
    raise AudioError('undecodable', UNDECODABLE.format(container)) from None


def _vorbis_frames(file: BinaryIO, head: bytes, size: int) -> int | None:
  """The length an Ogg Vorbis stream states on its last page (the granule
  position, in samples), or None for other Ogg codecs. libsndfile's own
  count ends at the first damaged page, so only this says that the rest of
  the file was never decoded."""
  if b'\x01vorbis' not in head[:512]:
    return None
  file.seek(max(0, size - _OGG_TAIL_BYTES))
  tail = file.read()
  file.seek(0)
  at = tail.rfind(b'OggS')
  # Only a single stream that starts at granule 0 (its first pages are its
  # headers) states its length there; chained or cut streams do not.
  if at < 0 or len(tail) < at + 18 or tail[at + 14:at + 18] != head[14:18]:
    return None
  granule = int.from_bytes(tail[at + 6:at + 14], 'little', signed=True)
  return granule if granule > 0 else None


def _decoded(sound, container: str, header: wav_header.WavHeader | None,
             stated: int | None, sample_rate_hz: int,
             max_seconds: float | None, first_seconds: float | None,
             limits: audio_limits.AudioLimits) -> DecodedAudio:
  """stated: the frames a Vorbis stream states (_vorbis_frames)."""
  rate, channels = sound.samplerate, sound.channels
  declared = header.frames if header else max(sound.frames, stated or 0)
  audio_limits.check_declared(declared, channels, rate, max_seconds, limits)
  wanted = None
  if first_seconds is not None:
    wanted = int(np.ceil(first_seconds * rate))
  elif max_seconds is not None:   # one more, to catch a header that lies
    wanted = int(max_seconds * rate) + 1
  samples, frames = _read_mono(sound, header, rate, sample_rate_hz, wanted,
                               limits)
  if header or stated or container == 'FLAC':   # they state the length
    expected = declared if wanted is None else min(declared, wanted)
    if frames != expected and declared > 0:
      raise AudioError('truncated', SHORT_READ.format(frames, expected))
  if not frames:
    raise AudioError('empty_audio', audio_limits.NO_SAMPLES)
  audio_limits.check_length(frames, rate, max_seconds)
  if not len(samples):
    raise AudioError('empty_audio', TOO_SHORT.format(sample_rate_hz))
  return DecodedAudio(samples, sample_rate_hz, rate, channels, container,
                      header)


def _read_mono(sound, header: wav_header.WavHeader | None, rate: int,
               sample_rate_hz: int, wanted: int | None,
               limits: audio_limits.AudioLimits) -> tuple[np.ndarray, int]:
  """(float32 mono samples at sample_rate_hz, frames decoded)."""
  dtype, scale = _READ_AS.get(header.encoding if header else '',
                              ('float32', None))
  check = audio_limits.SampleCheck()
  resampler = None
  if rate != sample_rate_hz:
    import soxr
    resampler = soxr.ResampleStream(rate, sample_rate_hz, 1, dtype='float32',
                                    quality=RESAMPLE_QUALITY)
  parts, frames = [], 0
  while wanted is None or frames < wanted:
    count = BLOCK_FRAMES if wanted is None else min(BLOCK_FRAMES,
                                                    wanted - frames)
    block = sound.read(count, dtype=dtype, always_2d=True)
    if not len(block):
      break
    frames += len(block)
    if scale is None:   # Floats may hold NaN, Inf or any magnitude.
      check.add(block)
    else:
      block = block.astype(np.float32)
      block *= scale
    mono = mix_channels(block) if block.shape[1] > 1 else block[:, 0]
    parts.append(resampler.resample_chunk(mono) if resampler else mono)
  check.raise_if_bad(limits)
  if resampler:
    parts.append(resampler.resample_chunk(np.zeros(0, np.float32),
                                          last=True))
  if len(parts) == 1:   # a note: one block, kept without a copy
    return parts[0], frames
  return np.concatenate(parts + [np.zeros(0, np.float32)]), frames


def mix_channels(block: np.ndarray) -> np.ndarray:
  """float32 [frames, channels] -> float32 [frames]: the channels averaged,
  each first turned to the loudest one's polarity where its correlation
  with it is below ANTI_PHASE_CORRELATION. A stereo file whose channels are
  opposite (a miswired cable, a mid-side mistake) is heard by a person as
  loud as either channel; a plain average would be silence. Channels that
  agree, or share little, are averaged as they are. The serving graph's WAV
  decoder (serving.wav_graph) is its twin, block by block alike."""
  block = np.asarray(block, np.float32)
  energy = np.einsum('fc,fc->c', block, block)
  loudest = block[:, int(np.argmax(energy))]
  product = block.T @ loudest                                   # [channels]
  opposite = product < ANTI_PHASE_CORRELATION * np.sqrt(
      energy * energy.max())
  signs = np.where(opposite, np.float32(-1.0), np.float32(1.0))
  return (block * signs).mean(axis=1, dtype=np.float32)


def decode_clip(data: bytes,
                params: feature_params.FeatureParams = (
                    feature_params.DEFAULT_PARAMS),
                limits: audio_limits.AudioLimits = audio_limits.DEFAULT_LIMITS
                ) -> np.ndarray:
  """A note's bytes -> float32 [params.clip_samples]: only its first clip is
  decoded, then padded or trimmed as the serving signature does."""
  decoded = decode(data, params.sample_rate_hz,
                   first_seconds=params.clip_seconds, limits=limits)
  return feature_params.pad_or_trim_numpy(decoded.samples, params)


def read_file(path: str, sample_rate_hz: int, *,
              max_seconds: float | None = None,
              first_seconds: float | None = None, inside: str | None = None,
              max_bytes: int = file_safety.MAX_RECORDING_BYTES,
              limits: audio_limits.AudioLimits = audio_limits.DEFAULT_LIMITS
              ) -> DecodedAudio:
  """`decode` of a local file, opened only if it is safe to read
  (file_safety: a regular file, inside `inside` when given)."""
  with file_safety.open_local_file(path, inside, max_bytes) as file:
    try:
      return decode(file, sample_rate_hz, max_seconds=max_seconds,
                    first_seconds=first_seconds, limits=limits)
    except OSError as e:
      raise AudioError('unreadable_audio',
                       e.strerror or type(e).__name__) from None
