"""WAV bytes -> samples inside the serving graph, with core TensorFlow ops.

The in-graph twin of nsynth_contracts.wav_header for serving_wav and
serving_long_wav (TF Serving has neither libsndfile nor tensorflow-io): the
same chunk walk and the same checks in the same order, refused in the same
words (the templates of audio_limits and wav_header). So a file the Beam job
and nsynth-predict refuse is refused here in their words, and a 16-bit PCM
WAV they accept (extensible, streaming, with chunks before or after its
data) gets the samples they decode. Other encodings are refused, naming
them: the graph decodes 16-bit PCM only (tf.io.decode_raw, not
tf.audio.decode_wav, whose own errors are TensorFlow's words and which
refuses valid streaming and extensible files).
"""

import tensorflow as tf

from nsynth_contracts import audio_decoding
from nsynth_contracts import audio_limits
from nsynth_contracts import wav_header
from serving.graph_checks import fill
from serving.graph_checks import require
from serving.graph_checks import seconds_text

# What `decode` accepts, as wav_header.WavHeader.encoding names it: the
# export's contract tells clients so (a test checks every encoding against
# the graph).
ENCODINGS = ('pcm16',)
OTHER_FORMAT = ('{} audio: {} decodes 16-bit PCM WAV only; send decoded float '
                'samples to {}')
OTHER_ENCODING = ('{}-bit {} WAV: {} decodes 16-bit PCM only; send decoded '
                  'float samples to {}')
OTHER_RATE = ('WAV sample rate must be {} Hz, not {} Hz: send resampled float '
              'samples to {}')
_OTHER_MAGIC = ((b'fLaC', 'FLAC'), (b'OggS', 'OGG'), (b'ID3', 'MP3'))
_PAD = b'\0' * 64   # header reads past the end see zeros, never an error


def _bytes_at(padded: tf.Tensor, offset, count: int) -> tf.Tensor:
  """int64 [count]: bytes of `padded` from `offset` (within its length)."""
  raw = tf.strings.substr(padded, tf.cast(offset, tf.int32), count)
  return tf.cast(tf.io.decode_raw(raw, tf.uint8), tf.int64)


def _little_endian(padded: tf.Tensor, offset, count: int) -> tf.Tensor:
  """The unsigned little-endian integer of `count` bytes, int64 []."""
  values = _bytes_at(padded, offset, count)
  return tf.reduce_sum(values * (256 ** tf.range(count, dtype=tf.int64)))


def _walk_chunks(padded: tf.Tensor, size: tf.Tensor):
  """wav_header.read_header's chunk walk: (error, fmt offset, fmt size,
  data offset, declared data size, offset reached, chunks walked), int64
  scalars; error is 0, or the 1-based index of the refusal in _WALK_ERRORS."""
  def keep_walking(error, fmt_at, fmt_size, data_at, data_size, offset,
                   chunks):
    del fmt_at, fmt_size, data_size
    return ((error == 0) & (data_at < 0) & (offset + 8 <= size) &
            (chunks < wav_header.MAX_CHUNKS))

  def step(error, fmt_at, fmt_size, data_at, data_size, offset, chunks):
    chunk_id = tf.strings.substr(padded, tf.cast(offset, tf.int32), 4)
    chunk_size = _little_endian(padded, offset + 4, 4)
    body = offset + 8
    is_fmt = tf.equal(chunk_id, 'fmt ')
    is_data = tf.equal(chunk_id, 'data')
    short_fmt = is_fmt & ((chunk_size < 16) | (body + 16 > size))
    payload = tf.minimum(tf.minimum(chunk_size, 40), size - body)
    tag = _little_endian(padded, tf.minimum(body, size), 2)
    no_subformat = is_fmt & ~short_fmt & tf.equal(
        tag, wav_header.EXTENSIBLE) & (payload < 26)
    data_first = is_data & (fmt_at < 0)
    error = tf.where(short_fmt, tf.constant(1, tf.int64), tf.where(
        no_subformat, tf.constant(2, tf.int64),
        tf.where(data_first, tf.constant(3, tf.int64), error)))
    found_fmt = is_fmt & tf.equal(error, 0)
    found_data = is_data & tf.equal(error, 0)
    return (error, tf.where(found_fmt, body, fmt_at),
            tf.where(found_fmt, chunk_size, fmt_size),
            tf.where(found_data, body, data_at),
            tf.where(found_data, chunk_size, data_size),
            body + chunk_size + chunk_size % 2, chunks + 1)

  zero, none = tf.constant(0, tf.int64), tf.constant(-1, tf.int64)
  return tf.while_loop(keep_walking, step,
                       (zero, none, zero, none, zero,
                        tf.constant(12, tf.int64), zero))


_WALK_ERRORS = (wav_header.FMT_TOO_SHORT, wav_header.NO_SUBFORMAT,
                wav_header.DATA_BEFORE_FMT)


def _checked_container(wav: tf.Tensor, padded: tf.Tensor, size: tf.Tensor,
                       signature: str, float_signature: str) -> tf.Tensor:
  """Refuses an empty file, and one that is not RIFF/WAVE, in the words of
  the decoder (naming another format serving_wav does not decode)."""
  wav = require(wav, size > 0, audio_limits.EMPTY_FILE)
  is_wav = (size >= 12) & tf.equal(tf.strings.substr(padded, 0, 4), 'RIFF') & (
      tf.equal(tf.strings.substr(padded, 8, 4), 'WAVE'))
  head = _bytes_at(padded, 0, 2)
  mpeg_sync = (tf.equal(head[0], 0xFF) & tf.equal(head[1] // 32, 7) &
               tf.not_equal(head[1] // 2 % 4, 0))
  for magic, name in _OTHER_MAGIC:
    other = tf.equal(tf.strings.substr(padded, 0, len(magic)), magic)
    if name == 'MP3':
      other |= mpeg_sync
    wav = require(wav, is_wav | ~other, OTHER_FORMAT.format(
        name, signature, float_signature))
  return require(wav, is_wav, audio_limits.NOT_AUDIO)


def _checked_walk(wav: tf.Tensor, padded: tf.Tensor, size: tf.Tensor):
  """(wav, fmt offset, data offset, data bytes) once the chunks are found and
  the data is all there, or INVALID_ARGUMENT as read_header words it."""
  error, fmt_at, _, data_at, declared, offset, _ = _walk_chunks(padded, size)
  for index, message in enumerate(_WALK_ERRORS, 1):
    wav = require(wav, tf.not_equal(error, index), message)
  unfound = tf.equal(error, 0) & (data_at < 0)
  wav = require(wav, ~(unfound & (offset + 8 <= size)),
                wav_header.TOO_MANY_CHUNKS)
  wav = require(wav, ~(unfound & (fmt_at < 0)), wav_header.NO_FMT)
  wav = require(wav, ~unfound, wav_header.NO_DATA)
  available = size - data_at
  data_bytes = tf.where(tf.equal(declared, wav_header.UNKNOWN_SIZE),
                        available, declared)
  wav = require(wav, data_bytes <= available, lambda: fill(
      wav_header.TRUNCATED, declared, available))
  return wav, tf.maximum(fmt_at, 0), data_at, data_bytes


def _checked_format(wav: tf.Tensor, padded: tf.Tensor, fmt_at: tf.Tensor,
                    data_bytes: tf.Tensor, limits: audio_limits.AudioLimits):
  """(wav, tag, channels, rate, block align, bits) of a header whose fields
  agree, or INVALID_ARGUMENT as read_header words it."""
  tag = _little_endian(padded, fmt_at, 2)
  tag = tf.where(tf.equal(tag, wav_header.EXTENSIBLE),
                 _little_endian(padded, fmt_at + 24, 2), tag)
  channels = _little_endian(padded, fmt_at + 2, 2)
  rate = _little_endian(padded, fmt_at + 4, 4)
  block_align = _little_endian(padded, fmt_at + 12, 2)
  bits = _little_endian(padded, fmt_at + 14, 2)
  is_pcm = tf.equal(tag, wav_header.PCM)
  kind = tf.where(is_pcm, 'PCM', 'float')
  wav = require(wav, is_pcm | tf.equal(tag, wav_header.IEEE_FLOAT),
                lambda: fill(wav_header.FORMAT_TAG, tag))
  widths = [(bits == w) & tf.equal(tag, t)
            for t, ws in wav_header.WIDTHS.items() for w in ws]
  wav = require(wav, tf.reduce_any(tf.stack(widths)),
                lambda: fill(wav_header.WIDTH, bits, kind))
  wav = require(wav, (channels >= 1) & (channels <= limits.max_channels),
                lambda: fill(audio_limits.CHANNELS, channels,
                             limits.max_channels))
  wav = require(wav, tf.equal(block_align, channels * bits // 8),
                lambda: fill(wav_header.BLOCK_ALIGN, block_align, channels,
                             bits))
  wav = require(wav, tf.equal(data_bytes % tf.maximum(block_align, 1), 0),
                lambda: fill(wav_header.PARTIAL_FRAME, data_bytes,
                             block_align))
  wav = require(wav, (rate >= limits.min_sample_rate_hz) &
                (rate <= limits.max_sample_rate_hz),
                lambda: fill(audio_limits.SAMPLE_RATE, rate,
                             limits.min_sample_rate_hz,
                             limits.max_sample_rate_hz))
  wav = require(wav, data_bytes > 0, wav_header.WAV_NO_SAMPLES)
  return wav, tag, channels, rate, block_align, bits


def decode(wav: tf.Tensor, sample_rate_hz: int, signature: str,
           float_signature: str, max_seconds: float | None = None,
           limits: audio_limits.AudioLimits = audio_limits.DEFAULT_LIMITS
           ) -> tf.Tensor:
  """One WAV file's bytes (string []) -> float32 [samples], mono.

  Args:
    sample_rate_hz: the only rate accepted (the graph does not resample).
    signature, float_signature: this signature's name, and the one that
      takes float samples instead, for the words of a refusal.
    max_seconds: refuse a longer recording, from its header.

  Raises (when run):
    InvalidArgumentError: what the decoder would refuse, in its words; or
      another encoding or rate, naming them.
  """
  size = tf.cast(tf.strings.length(wav), tf.int64)
  padded = tf.strings.join([wav, _PAD])
  wav = _checked_container(wav, padded, size, signature, float_signature)
  wav, fmt_at, data_at, data_bytes = _checked_walk(wav, padded, size)
  wav, tag, channels, rate, block_align, bits = _checked_format(
      wav, padded, fmt_at, data_bytes, limits)
  wav = require(wav, tf.equal(tag, wav_header.PCM) & tf.equal(bits, 16),
                lambda: fill(OTHER_ENCODING, bits,
                             tf.where(tf.equal(tag, wav_header.PCM), 'PCM',
                                      'float'), signature, float_signature))
  wav = require(wav, tf.equal(rate, sample_rate_hz), lambda: fill(
      OTHER_RATE, sample_rate_hz, rate, float_signature))
  if max_seconds is not None:
    frames = tf.cast(data_bytes // tf.maximum(block_align, 1), tf.float64)
    seconds = frames / tf.cast(rate, tf.float64)
    wav = require(wav, frames <= max_seconds * tf.cast(rate, tf.float64),
                  lambda: fill(
        audio_limits.TOO_LONG, seconds_text(seconds),
        audio_limits.limit_text(max_seconds)))
  pcm = tf.io.decode_raw(tf.strings.substr(wav, tf.cast(data_at, tf.int32),
                                           tf.cast(data_bytes, tf.int32)),
                         tf.int16, little_endian=True)
  samples = tf.cast(pcm, tf.float32) * (1.0 / 32768.0)
  return mix_channels(tf.reshape(samples, [-1, tf.cast(channels, tf.int32)]))


def mix_channels(frames: tf.Tensor) -> tf.Tensor:
  """float32 [frames, channels] -> [frames]: audio_decoding.mix_channels's
  twin, a block of audio_decoding.BLOCK_FRAMES at a time as it decodes: the
  channels averaged, each in anti-phase with the loudest turned first."""
  count = tf.shape(frames)[0]
  block = audio_decoding.BLOCK_FRAMES
  blocks = tf.reshape(tf.pad(frames, [[0, -count % block], [0, 0]]),
                      [-1, block, tf.shape(frames)[1]])        # [N, block, C]
  energy = tf.reduce_sum(tf.square(blocks), axis=1)            # [N, C]
  loudest = tf.gather(blocks, tf.argmax(energy, axis=1), axis=2,
                      batch_dims=1)                            # [N, block]
  product = tf.einsum('nfc,nf->nc', blocks, loudest)           # [N, C]
  opposite = product < audio_decoding.ANTI_PHASE_CORRELATION * tf.sqrt(
      energy * tf.reduce_max(energy, axis=1, keepdims=True))
  signs = tf.where(opposite, -1.0, 1.0)[:, tf.newaxis, :]
  mixed = tf.reduce_mean(blocks * signs, axis=2)               # [N, block]
  return tf.reshape(mixed, [-1])[:count]                      # [samples]
