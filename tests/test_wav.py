"""WAV decoding against independent writers (wave, soundfile)."""

import io

import numpy as np
import pytest
import soundfile

from beam_pipelines import wav
from tests.conftest import float_wav_bytes
from tests.conftest import wav_bytes

RNG = np.random.default_rng(7)
NOTE = (0.5 * np.sin(np.linspace(0, 400 * np.pi, 64000))).astype(np.float32)


@pytest.mark.parametrize('width,tolerance', [(1, 1 / 64), (2, 1e-4), (3, 1e-6),
                                             (4, 1e-7)])
def test_pcm_widths_decode_like_soundfile(width, tolerance):
  data = wav_bytes(NOTE, sample_width=width)
  decoded = wav.decode_wav(data)
  reference, rate = soundfile.read(io.BytesIO(data),
                                   dtype='float32', always_2d=True)
  assert decoded.sample_rate_hz == rate == 16000
  np.testing.assert_allclose(decoded.samples, reference, atol=tolerance)
  np.testing.assert_allclose(decoded.samples[:, 0], NOTE, atol=2 * tolerance)


def test_float_wav_decodes():
  decoded = wav.decode_wav(float_wav_bytes(NOTE))
  assert decoded.encoding == 'float32'
  np.testing.assert_array_equal(decoded.samples[:, 0], NOTE)


def test_stereo_is_averaged_to_mono():
  stereo = np.stack([NOTE, np.zeros_like(NOTE)], axis=1)
  clip = wav.to_clip(wav.decode_wav(wav_bytes(stereo)))
  np.testing.assert_allclose(clip, NOTE / 2, atol=1e-4)


def test_other_sample_rates_are_resampled_with_tensorflow_io():
  # Calls the tensorflow-io op the project uses: an incompatible TF/tfio pair
  # fails here, loudly, rather than in a worker.
  t = np.arange(44100 * 4) / 44100.0
  tone = 0.5 * np.sin(2 * np.pi * 1000.0 * t)
  clip = wav.to_clip(wav.decode_wav(wav_bytes(tone, sample_rate=44100)))
  assert clip.shape == (64000,)
  spectrum = np.abs(np.fft.rfft(clip[8000:24000]))
  peak_hz = np.argmax(spectrum) * 16000 / 16000  # 16,000-sample window: 1 Hz bins
  assert abs(peak_hz - 1000.0) <= 2.0


def test_short_notes_are_padded_and_long_ones_trimmed():
  assert wav.to_clip(wav.decode_wav(wav_bytes(NOTE[:100]))).shape == (64000,)
  long_note = np.concatenate([NOTE, NOTE])
  np.testing.assert_allclose(wav.to_clip(wav.decode_wav(wav_bytes(long_note))),
                             NOTE, atol=1e-4)


@pytest.mark.parametrize('data,kind', [
    (b'', 'empty_file'),
    (b'ID3\x04\x00 this is an mp3, honest', 'not_wav'),
    (wav_bytes(NOTE)[:20000], 'truncated'),
    (wav_bytes(NOTE)[:44], 'truncated'),
    (wav_bytes(NOTE[:0]), 'empty_audio'),
])
def test_unusable_files_raise_audio_error_with_a_kind(data, kind):
  with pytest.raises(wav.AudioError) as error:
    wav.decode_wav(data)
  assert error.value.kind == kind
  assert str(error.value)


@pytest.mark.parametrize('bad', [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_refused(bad):
  samples = NOTE.copy()
  samples[1000] = bad
  with pytest.raises(wav.AudioError, match='NaN or Inf') as error:
    wav.to_clip(wav.decode_wav(float_wav_bytes(samples)))
  assert error.value.kind == 'non_finite'
