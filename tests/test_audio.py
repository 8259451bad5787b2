"""The one decoder against independent writers (wave, soundfile) and an
analytic reference, its header checks and its bounds."""

import io
import re
import struct
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from nsynth_contracts import audio_decoding
from nsynth_contracts import audio_limits
from nsynth_contracts import feature_params
from tests.conftest import float_wav_bytes
from tests.conftest import wav_bytes

NOTE = (0.5 * np.sin(np.linspace(0, 400 * np.pi, 64000))).astype(np.float32)
RATE = feature_params.DEFAULT_PARAMS.sample_rate_hz


def decode(data, **kwargs):
  return audio_decoding.decode(data, RATE, **kwargs)


@pytest.mark.parametrize('width,tolerance', [(1, 1 / 64), (2, 1e-4), (3, 1e-6),
                                             (4, 1e-7)])
def test_pcm_widths_decode_like_soundfile(width, tolerance):
  data = wav_bytes(NOTE, sample_width=width)
  decoded = decode(data)
  reference, rate = soundfile.read(io.BytesIO(data),
                                   dtype='float32', always_2d=True)
  assert decoded.source_rate_hz == rate == RATE
  assert decoded.wav.encoding == f'pcm{8 * width}'
  np.testing.assert_allclose(decoded.samples, reference[:, 0], atol=tolerance)
  np.testing.assert_allclose(decoded.samples, NOTE, atol=2 * tolerance)


def test_decoded_values_equal_libsndfiles_own_float_conversion():
  # The decoder reads integers and scales them itself (cheaper); the values
  # must be exactly libsndfile's.
  for width in (1, 2, 3, 4):
    data = wav_bytes(NOTE, sample_width=width)
    reference, _ = soundfile.read(io.BytesIO(data), dtype='float32')
    np.testing.assert_array_equal(decode(data).samples, reference)


@pytest.mark.parametrize('subtype', ['FLOAT', 'DOUBLE'])
def test_float_wavs_decode_exactly(subtype):
  buffer = io.BytesIO()
  soundfile.write(buffer, NOTE, RATE, subtype=subtype, format='WAV')
  np.testing.assert_array_equal(decode(buffer.getvalue()).samples, NOTE)


def test_stereo_is_averaged_to_mono():
  stereo = np.stack([NOTE, np.zeros_like(NOTE)], axis=1)
  np.testing.assert_allclose(decode(wav_bytes(stereo)).samples, NOTE / 2,
                             atol=1e-4)


def test_channels_in_anti_phase_add_up_instead_of_cancelling():
  """A stereo file whose channels are opposite is as loud to a person as
  either channel; averaged as it was, it decoded to silence, 'no sound'."""
  from nsynth_contracts import window_params
  stereo = np.stack([NOTE, -NOTE], axis=1)
  decoded = decode(wav_bytes(stereo)).samples
  np.testing.assert_allclose(decoded, NOTE, atol=1e-4)
  padded = np.zeros((1, 4 * RATE), np.float32)
  padded[0, :len(decoded)] = decoded
  assert window_params.sounding_numpy(padded)[0]
  # Four channels, two of them opposite the loudest: nothing cancels.
  four = np.stack([NOTE, -0.5 * NOTE, 0.8 * NOTE, -NOTE], axis=1)
  np.testing.assert_allclose(audio_decoding.mix_channels(four),
                             NOTE * (1 + 0.5 + 0.8 + 1) / 4, atol=1e-6)


def test_channels_that_agree_or_share_little_are_averaged_as_they_are():
  rng = np.random.default_rng(3)
  other = (0.3 * rng.standard_normal(len(NOTE))).astype(np.float32)
  for second in (0.5 * NOTE, other, -0.2 * NOTE + other):
    block = np.stack([NOTE, second], axis=1).astype(np.float32)
    np.testing.assert_array_equal(audio_decoding.mix_channels(block),
                                  block.mean(axis=1, dtype=np.float32))


@pytest.mark.parametrize('rate', [8000, 22050, 44100, 48000])
def test_other_rates_are_resampled_to_the_ideal_tone(rate):
  # The reference is the tone itself, written at 16 kHz: no resampler.
  def tone(at_rate, seconds=3.0):
    t = np.arange(int(at_rate * seconds)) / at_rate
    return 0.3 * np.sin(2 * np.pi * 440.0 * t) + 0.2 * np.sin(
        2 * np.pi * 1234.5 * t)
  decoded = decode(float_wav_bytes(tone(rate), sample_rate=rate)).samples
  ideal = tone(RATE)
  assert decoded.dtype == np.float32 and len(decoded) == len(ideal)
  inner = slice(RATE // 4, -RATE // 4)   # away from the filter's edges
  error = decoded[inner] - ideal[inner]
  error_db = 10 * np.log10(np.mean(error ** 2) / np.mean(ideal[inner] ** 2))
  assert error_db < -60, error_db


def test_notes_are_padded_and_long_ones_trimmed_to_one_clip():
  params = feature_params.DEFAULT_PARAMS
  short = audio_decoding.decode_clip(wav_bytes(NOTE[:100]))
  assert short.shape == (params.clip_samples,) and not short[100:].any()
  long_note = np.concatenate([NOTE, -NOTE])
  np.testing.assert_allclose(audio_decoding.decode_clip(wav_bytes(long_note)),
                             NOTE, atol=1e-4)


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
    (b'', 'empty_file', 'the file is empty (0 bytes)'),
    (b'password=hunter2' + bytes(100), 'not_audio',
     'not a WAV, FLAC, OGG or MP3 file'),
    (b'ID3\x04\x00 this is an mp3, honest' + bytes(100), 'undecodable',
     'cannot decode its MP3 data'),
    (wav_bytes(NOTE)[:20000], 'truncated',
     'truncated: the data chunk declares 128000 bytes but the file holds '
     '19956'),
    (wav_bytes(NOTE)[:44], 'truncated', 'declares 128000 bytes'),
    (wav_bytes(NOTE[:0]), 'empty_audio', 'the WAV holds no samples'),
    (raw_wav(channels=2, block_align=2), 'bad_header',
     'block align 2 contradicts 2 channel(s) of 16 bits'),
    (raw_wav(bits=24, block_align=2), 'bad_header', 'block align 2'),
    (raw_wav(channels=60000, block_align=2), 'bad_header',
     '60000 channels is outside 1..8'),
    (raw_wav(channels=0, block_align=0), 'bad_header', '0 channels'),
    (raw_wav(data=bytes(4001)), 'bad_header', 'not a whole number'),
    (raw_wav(declared=10**9), 'truncated', 'declares 1000000000 bytes'),
    (raw_wav(rate=50), 'bad_sample_rate', 'sample rate 50 Hz is outside'),
    (raw_wav(rate=10**9), 'bad_sample_rate', 'is outside'),
    (raw_wav(bits=7, block_align=1), 'unsupported_format', '7-bit PCM'),
    (raw_wav(tag=99), 'unsupported_format', 'format tag 99'),
    (raw_wav(tag=3, bits=16), 'unsupported_format', '16-bit float'),
    (raw_wav()[:36] + (b'LIST' + bytes(4)) * 70 + raw_wav()[36:],
     'bad_header', 'more than 64 chunks'),
])
def test_unusable_files_are_refused_with_a_kind_before_decoding(data, kind,
                                                                 message):
  with pytest.raises(audio_limits.AudioError) as error:
    audio_decoding.decode_clip(data)
  assert error.value.kind == kind
  assert message in str(error.value)


def test_the_decoder_never_quotes_the_files_bytes():
  secret = b'password=hunter2 ' * 10
  for data in (secret, b'RIFF\x10\x00\x00\x00WAVE' + secret,
               b'fLaC' + secret):
    with pytest.raises(audio_limits.AudioError) as error:
      audio_decoding.decode_clip(data)
    assert 'hunter2' not in str(error.value)


@pytest.mark.parametrize('bad,count', [(np.nan, 1), (np.inf, 2),
                                       (-np.inf, 3)])
def test_non_finite_samples_are_refused_and_counted(bad, count):
  samples = NOTE.copy()
  samples[1000:1000 + count] = bad
  with pytest.raises(audio_limits.AudioError) as error:
    decode(float_wav_bytes(samples))
  assert error.value.kind == 'non_finite'
  assert str(error.value) == f'{count} samples are NaN or Inf'


@pytest.mark.parametrize('peak', [1e19, 5.0, -1e6])
def test_float_audio_far_outside_full_scale_is_refused(peak):
  samples = NOTE.copy()
  samples[10] = peak
  with pytest.raises(audio_limits.AudioError,
                     match='must lie within -1..1') as error:
    decode(float_wav_bytes(samples))
  assert error.value.kind == 'out_of_range'


def test_work_is_bounded_by_the_header_before_anything_is_decoded(
    monkeypatch):
  import soundfile
  frames_read = []
  read = soundfile.SoundFile.read

  def counted(self, *args, **kwargs):
    block = read(self, *args, **kwargs)
    frames_read.append(len(block))
    return block

  monkeypatch.setattr(soundfile.SoundFile, 'read', counted)
  # An hour declared at 8 kHz: a note decodes only its first clip ...
  hour = raw_wav(rate=8000, data=bytes(2 * 8000 * 3600))
  assert len(decode(hour, first_seconds=4.0).samples) == 4 * RATE
  assert sum(frames_read) == 4 * 8000
  # ... and a recording longer than allowed is refused from its header,
  # before a sample of it is read.
  with pytest.raises(audio_limits.AudioError) as error:
    decode(hour, max_seconds=600)
  assert error.value.kind == 'too_long'
  assert str(error.value) == ('the recording lasts 3600.0 s, longer than the '
                              '600 s allowed; cut it into parts')
  assert sum(frames_read) == 4 * 8000


def test_a_vorbis_file_damaged_mid_stream_is_refused_not_half_decoded():
  """libsndfile stops at the first damaged page and counts only what it
  decoded; the stream's last page still states its whole length."""
  buffer = io.BytesIO()
  soundfile.write(buffer, (0.3 * np.sin(np.arange(10 * RATE) / 5.0)
                           ).astype(np.float32), RATE, format='OGG',
                  subtype='VORBIS')
  data = bytearray(buffer.getvalue())
  assert len(decode(bytes(data)).samples) == 10 * RATE
  middle = len(data) // 2
  data[middle:middle + 2000] = bytes(b ^ 0x55 for b in
                                     data[middle:middle + 2000])
  with pytest.raises(audio_limits.AudioError) as error:
    decode(bytes(data))
  assert error.value.kind == 'truncated'
  assert re.fullmatch(r'libsndfile decoded \d+ of the 160000 frames the file '
                      r'declares', str(error.value))


def test_a_recording_a_sample_too_long_never_reads_as_the_limit():
  samples = 600 * RATE + 1
  with pytest.raises(audio_limits.AudioError) as error:
    audio_limits.check_length(samples, RATE, 600)
  assert str(error.value).startswith('the recording lasts 600.1 s, longer '
                                     'than the 600 s allowed')
  assert audio_limits.seconds_text(600.0) == '600.0'


def test_the_graph_writes_lengths_as_the_python_side_does():
  import tensorflow as tf

  from serving import graph_checks
  for seconds in (600.0, 600.0 + 1 / RATE, 3600.0, 12.34, 0.05):
    assert graph_checks.seconds_text(tf.constant(seconds, tf.float64)
                                     ).numpy().decode() == (
        audio_limits.seconds_text(seconds)), seconds


def test_decoding_needs_no_tensorflow_and_damaged_mp3_prints_nothing(tmp_path):
  """The client and the Beam launcher decode without importing TensorFlow
  (soxr resamples), and libmpg123's resync notes never reach stderr."""
  t = np.arange(44100 * 2) / 44100.0
  path = tmp_path / 'tone.mp3'
  soundfile.write(str(path), 0.4 * np.sin(2 * np.pi * 440 * t), 44100,
                  format='MP3', subtype='MPEG_LAYER_III')
  data = path.read_bytes()
  (tmp_path / 'damaged.mp3').write_bytes(data[:2000] + bytes(3000) +
                                         data[5000:])
  script = f'''
import sys
from nsynth_contracts import audio_decoding, audio_limits
decoded = audio_decoding.read_file({str(path)!r}, 16000)
print(decoded.container, decoded.source_rate_hz, len(decoded.samples) > 0)
try:
  audio_decoding.read_file({str(tmp_path / 'damaged.mp3')!r}, 16000)
except audio_limits.AudioError as e:
  print(e.kind, e)
print('tensorflow' in sys.modules, 'tensorflow_io' in sys.modules)
'''
  result = subprocess.run([sys.executable, '-c', script], capture_output=True,
                          text=True, timeout=120)
  assert result.returncode == 0, result.stderr
  assert result.stdout.splitlines() == [
      'MP3 44100 True', 'undecodable cannot decode its MP3 data',
      'False False']
  assert result.stderr == ''
