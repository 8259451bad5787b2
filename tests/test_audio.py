"""WAV decoding against independent writers (wave, soundfile), and its limits."""

import io
import struct

import numpy as np
import pytest
import soundfile

from nsynth_contracts import audio
from tests.conftest import float_wav_bytes
from tests.conftest import wav_bytes

RNG = np.random.default_rng(7)
NOTE = (0.5 * np.sin(np.linspace(0, 400 * np.pi, 64000))).astype(np.float32)


@pytest.mark.parametrize('width,tolerance', [(1, 1 / 64), (2, 1e-4), (3, 1e-6),
                                             (4, 1e-7)])
def test_pcm_widths_decode_like_soundfile(width, tolerance):
  data = wav_bytes(NOTE, sample_width=width)
  decoded = audio.decode_wav(data)
  reference, rate = soundfile.read(io.BytesIO(data),
                                   dtype='float32', always_2d=True)
  assert decoded.sample_rate_hz == rate == 16000
  np.testing.assert_allclose(decoded.samples, reference, atol=tolerance)
  np.testing.assert_allclose(decoded.samples[:, 0], NOTE, atol=2 * tolerance)


def test_float_wav_decodes():
  decoded = audio.decode_wav(float_wav_bytes(NOTE))
  assert decoded.encoding == 'float32'
  np.testing.assert_array_equal(decoded.samples[:, 0], NOTE)


def test_stereo_is_averaged_to_mono():
  stereo = np.stack([NOTE, np.zeros_like(NOTE)], axis=1)
  clip = audio.to_clip(audio.decode_wav(wav_bytes(stereo)))
  np.testing.assert_allclose(clip, NOTE / 2, atol=1e-4)


def test_other_sample_rates_are_resampled_with_tensorflow_io():
  # Calls the tensorflow-io op the project uses: an incompatible TF/tfio pair
  # fails here, loudly, rather than in a worker.
  t = np.arange(44100 * 4) / 44100.0
  tone = 0.5 * np.sin(2 * np.pi * 1000.0 * t)
  clip = audio.to_clip(audio.decode_wav(wav_bytes(tone, sample_rate=44100)))
  assert clip.shape == (64000,)
  spectrum = np.abs(np.fft.rfft(clip[8000:24000]))
  peak_hz = np.argmax(spectrum) * 16000 / 16000  # 16,000-sample window: 1 Hz bins
  assert abs(peak_hz - 1000.0) <= 2.0


def test_short_notes_are_padded_and_long_ones_trimmed():
  assert audio.to_clip(audio.decode_wav(wav_bytes(NOTE[:100]))).shape == (64000,)
  long_note = np.concatenate([NOTE, NOTE])
  np.testing.assert_allclose(audio.to_clip(audio.decode_wav(wav_bytes(long_note))),
                             NOTE, atol=1e-4)


@pytest.mark.parametrize('data,kind', [
    (b'', 'empty_file'),
    (b'ID3\x04\x00 this is an mp3, honest', 'not_wav'),
    (wav_bytes(NOTE)[:20000], 'truncated'),
    (wav_bytes(NOTE)[:44], 'truncated'),
    (wav_bytes(NOTE[:0]), 'empty_audio'),
])
def test_unusable_files_raise_audio_error_with_a_kind(data, kind):
  with pytest.raises(audio.AudioError) as error:
    audio.decode_wav(data)
  assert error.value.kind == kind
  assert str(error.value)


@pytest.mark.parametrize('bad', [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_refused(bad):
  samples = NOTE.copy()
  samples[1000] = bad
  with pytest.raises(audio.AudioError, match='NaN or Inf') as error:
    audio.to_clip(audio.decode_wav(float_wav_bytes(samples)))
  assert error.value.kind == 'non_finite'


def raw_wav(tag=1, channels=1, rate=16000, block_align=2, bits=16,
            data=bytes(4000), declared=None):
  """A WAV built field by field, so that the fields may contradict."""
  fmt = struct.pack('<HHIIHH', tag, channels, rate, rate * block_align,
                    block_align, bits)
  size = len(data) if declared is None else declared
  body = (b'WAVE' + b'fmt ' + struct.pack('<I', 16) + fmt + b'data' +
          struct.pack('<I', size) + data)
  return b'RIFF' + struct.pack('<I', len(body)) + body


@pytest.mark.parametrize('data,kind,message', [
    (raw_wav(channels=2, block_align=2), 'bad_header',
     'block align 2 contradicts 2 channel'),
    (raw_wav(bits=24, block_align=2), 'bad_header', 'block align 2'),
    (raw_wav(channels=60000, block_align=2), 'bad_header',
     '60000 channels is outside'),
    (raw_wav(channels=0, block_align=0), 'bad_header', '0 channels'),
    (raw_wav(data=bytes(4001)), 'bad_header', 'not a whole number'),
    (raw_wav(declared=10**9), 'truncated', 'declares 1000000000 bytes'),
    (raw_wav(rate=50), 'bad_sample_rate', 'sample rate 50 Hz is outside'),
    (raw_wav(rate=10**9), 'bad_sample_rate', 'is outside'),
    (raw_wav(bits=7, block_align=1), 'unsupported_format', '7-bit PCM'),
    (raw_wav(tag=99), 'unsupported_format', 'format tag 99'),
    (raw_wav(tag=3, bits=16), 'unsupported_format', '16-bit float'),
])
def test_headers_that_do_not_add_up_are_refused_before_decoding(data, kind,
                                                                message):
  with pytest.raises(audio.AudioError, match=message) as error:
    audio.clip_from_wav(data)
  assert error.value.kind == kind


def test_the_decoder_never_quotes_the_files_bytes():
  secret = b'password=hunter2 ' * 10
  for data in (secret, b'RIFF\x10\x00\x00\x00WAVE' + secret):
    with pytest.raises(audio.AudioError) as error:
      audio.clip_from_wav(data)
    assert 'hunter2' not in str(error.value)


def test_work_is_bounded_before_anything_is_allocated():
  limits = audio.AudioLimits(max_file_bytes=1000)
  with pytest.raises(audio.AudioError, match='more than 1000') as error:
    audio.decode_wav(wav_bytes(NOTE), limits=limits)
  assert error.value.kind == 'too_large'
  # An hour declared at 8 kHz: only the first clip is ever decoded.
  hour = raw_wav(rate=8000, data=bytes(2 * 8000 * 3600))
  decoded = audio.decode_wav(hour, max_seconds=4.0)
  assert decoded.samples.shape == (32000, 1)


@pytest.mark.parametrize('peak', [1e19, 5.0, -1e6])
def test_float_audio_far_outside_full_scale_is_refused(peak):
  samples = NOTE.copy()
  samples[10] = peak
  with pytest.raises(audio.AudioError, match='must lie in') as error:
    audio.clip_from_wav(float_wav_bytes(samples))
  assert error.value.kind == 'out_of_range'


def test_decoded_values_equal_libsndfiles_own_float_conversion():
  # The decoder reads integers and scales them itself (cheaper); the values
  # must be exactly libsndfile's.
  for width in (1, 2, 3, 4):
    data = wav_bytes(NOTE, sample_width=width)
    reference, _ = soundfile.read(io.BytesIO(data), dtype='float32',
                                  always_2d=True)
    np.testing.assert_array_equal(audio.decode_wav(data).samples, reference)
