"""Audio out: WAV encoding, for the demo renderer, the export's warmup
requests and the tests.

Audio in lives apart, one concern a module: `audio_limits` (bounds and the
words of every refusal), `wav_header` (our check of a WAV's header),
`file_safety` (which files may be opened) and `audio_decoding` (the one
decoder every entry point calls).
"""

import io
import wave

import numpy as np


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
