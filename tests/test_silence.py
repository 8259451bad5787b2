"""What holds sound: one judgement, made as a listener makes it, for the Beam
job, nsynth-predict, the client and every signature (they all call
windows.sounding or its NumPy twin window_params.sounding_numpy).

A clip holds sound when its 16 ms frames stay at or above -60 dBFS for
48 ms in a row; never by the RMS over the whole 4 s clip, which calls a soft,
fast-decaying note silence and a click in silence a sound."""

import numpy as np
import pytest
import tensorflow as tf

from nsynth_contracts import window_params
from nsynth_contracts import windows
from tests.conftest import holds_sound

RATE = 16000
CLIP = 4 * RATE
SECONDS = np.arange(CLIP) / RATE
rng = np.random.default_rng(0)


def soft_piano(peak_dbfs=-40.0, decay_seconds=0.12):
  """A soft struck note: partials with a fast exponential decay, its peak at
  `peak_dbfs`."""
  tone = sum(np.sin(2 * np.pi * 261.6 * k * SECONDS) / k for k in (1, 2, 3))
  note = tone * np.exp(-SECONDS / decay_seconds)
  return (note / np.abs(note).max() * 10 ** (peak_dbfs / 20)).astype(
      np.float32)


def click(at_seconds=1.0, samples=16, amplitude=1.0):
  clip = np.zeros(CLIP, np.float32)
  start = int(at_seconds * RATE)
  clip[start:start + samples] = amplitude
  return clip


def one_sample_file():
  clip = np.zeros(CLIP, np.float32)
  clip[0] = 0.9   # the file's only sample; the rest is the note's padding
  return clip


def dither():
  """16-bit TPDF dither: what a 'silent' 16-bit recording holds."""
  lsb = 1 / 32768
  return (lsb * (rng.uniform(-1, 1, CLIP) + rng.uniform(-1, 1, CLIP))
          ).astype(np.float32)


def whole_clip_dbfs(clip):
  return 20 * np.log10(max(np.sqrt(np.mean(np.square(clip))), 1e-10))


SOUNDS = {
    'soft piano, peak -40 dBFS': soft_piano(),
    'soft piano, peak -50 dBFS': soft_piano(-50.0, 0.3),
    'a steady tone at -55 dBFS': (10 ** (-55 / 20) * np.sqrt(2) * np.sin(
        2 * np.pi * 440 * SECONDS)).astype(np.float32),
    'a 0.25 s note, then silence': np.where(
        SECONDS < 0.25, 0.3 * np.sin(2 * np.pi * 440 * SECONDS), 0.0
    ).astype(np.float32),
}
NO_SOUNDS = {
    'digital silence': np.zeros(CLIP, np.float32),
    'a one-sample file': one_sample_file(),
    'one click (1 ms, full scale)': click(),
    'three clicks 0.5 s apart': click(0.5) + click(1.0) + click(1.5),
    '16-bit dither': dither(),
    'noise at -75 dBFS': (10 ** (-75 / 20) * rng.standard_normal(CLIP)
                          ).astype(np.float32),
}


def test_the_whole_clip_rms_would_judge_these_the_wrong_way_round():
  """Why the judgement is not the clip's RMS: it calls the soft note
  silence and the click sound."""
  assert whole_clip_dbfs(SOUNDS['soft piano, peak -40 dBFS']) < -60
  assert whole_clip_dbfs(NO_SOUNDS['one click (1 ms, full scale)']) > -60


@pytest.mark.parametrize('name', SOUNDS)
def test_an_audible_note_holds_sound(name):
  assert window_params.sounding_numpy(SOUNDS[name][np.newaxis])[0]


@pytest.mark.parametrize('name', NO_SOUNDS)
def test_clicks_silence_and_dither_hold_no_sound(name):
  assert not window_params.sounding_numpy(NO_SOUNDS[name][np.newaxis])[0]


def test_numpy_and_tensorflow_twins_agree_with_an_independent_reference():
  clips = list(SOUNDS.values()) + list(NO_SOUNDS.values())
  # Sounds that last around the 48 ms limit, either side (a frame that
  # holds part of the sound counts: 40 ms reach into a third frame).
  for milliseconds in (10, 20, 30, 40, 50, 80, 200):
    clips.append(np.where(SECONDS < milliseconds / 1000, 0.1 * np.sin(
        2 * np.pi * 330 * SECONDS), 0.0).astype(np.float32))
  batch = np.stack(clips)
  expected = [holds_sound(c) for c in clips]
  assert window_params.sounding_numpy(batch).tolist() == expected
  assert windows.sounding(tf.constant(batch)).numpy().tolist() == expected
  assert expected[-7:] == [False, False, False, True, True, True, True]


def test_a_clip_shorter_than_a_note_holds_no_sound():
  short = np.full((1, 400), 0.5, np.float32)   # 25 ms of loud sound
  assert not window_params.sounding_numpy(short)[0]
  assert not windows.sounding(tf.constant(short)).numpy()[0]


@pytest.mark.slow
def test_every_audible_demo_note_at_the_quietest_velocity_holds_sound(
    tmp_path):
  """The demo's quietest velocity, every instrument of both pip-installable
  libraries: each note with audible content is kept (and so named), and only
  digital silence is not."""
  from demo_data import notes as demo_notes
  from tests.conftest import TINY_LIBRARIES
  from tests.conftest import read_demo_wav
  demo_notes.render_dataset(str(tmp_path), 12, (50,), TINY_LIBRARIES)
  clips = np.stack([read_demo_wav(path) for path in sorted(
      tmp_path.glob('nsynth-*/audio/*.wav'))]).astype(np.float32)
  peaks = np.abs(clips).max(axis=1)
  heard = window_params.sounding_numpy(clips)
  assert len(clips) > 500
  assert heard[peaks >= 10 ** (-60 / 20)].all()
  assert not heard[peaks == 0].any()
