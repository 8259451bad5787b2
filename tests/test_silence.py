"""What holds sound: one judgement, made as a listener makes it, for the Beam
job, nsynth-predict, the client and every signature (they all call
windows.sounding or its NumPy twin window_params.sounding_numpy).

A clip holds sound when its 16 ms frames stay at or above -60 dBFS (each
frame's RMS about its own mean, so that DC is no sound) for 48 ms in a row,
or when a shorter sound above it repeats as a pitch does, which a click does
not; never by the RMS over the whole 4 s clip, which calls a soft,
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


def top_piano_note(pitch=108, peak_dbfs=-40.0, decay_seconds=0.008):
  """A soft note at the top of a piano (4.2 kHz at pitch 108): heard, yet
  above -60 dBFS for two 16 ms frames only."""
  hz = 440.0 * 2 ** ((pitch - 69) / 12)
  note = np.sin(2 * np.pi * hz * SECONDS) * np.exp(-SECONDS / decay_seconds)
  return (note / np.abs(note).max() * 10 ** (peak_dbfs / 20)).astype(
      np.float32)


def noise_burst(milliseconds, dbfs=-20.0, at_seconds=1.0):
  clip = np.zeros(CLIP, np.float32)
  start = int(at_seconds * RATE)
  clip[start:start + milliseconds * RATE // 1000] = 10 ** (dbfs / 20) * (
      rng.standard_normal(milliseconds * RATE // 1000))
  return clip


def eight_bit_silence():
  """An 8-bit WAV whose every byte is 0x7F, one step below its midpoint,
  as the decoder reads it: a constant offset of -1/128."""
  import io
  import wave

  from nsynth_contracts import audio_decoding
  buffer = io.BytesIO()
  with wave.open(buffer, 'wb') as w:
    w.setnchannels(1)
    w.setsampwidth(1)
    w.setframerate(RATE)
    w.writeframes(b'\x7f' * CLIP)
  return audio_decoding.decode_clip(buffer.getvalue())


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
    'a top piano note, pitch 108, gone in 32 ms': top_piano_note(),
    'a top piano note, pitch 102, peak -44 dBFS': top_piano_note(102, -44.0),
    'a soft note on a DC offset of 0.05': soft_piano() + np.float32(0.05),
    'the lowest piano note, 27.5 Hz, at -50 dBFS': (
        10 ** (-50 / 20) * np.sqrt(2) * np.sin(2 * np.pi * 27.5 * SECONDS)
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
    'a DC offset of 0.05': np.full(CLIP, 0.05, np.float32),
    '8-bit silence stored as 0x7F': eight_bit_silence(),
    'a DC offset that stops after 1 s': np.where(SECONDS < 1.0, 0.05, 0.0
                                                 ).astype(np.float32),
    'a click as long as the top piano note (noise, 2 frames)':
        noise_burst(20),
    'an impulse as loud as the top piano note': click(
        samples=1, amplitude=10 ** (-40 / 20)),
}


def test_the_shortest_notes_and_clicks_are_equally_short():
  """What tells the top piano notes from the clicks is what they are, not
  how long: each is loud for two frames or fewer, too short for the rule
  of three frames."""
  for clip in (SOUNDS['a top piano note, pitch 108, gone in 32 ms'],
               SOUNDS['a top piano note, pitch 102, peak -44 dBFS'],
               NO_SOUNDS['a click as long as the top piano note (noise, 2 '
                         'frames)']):
    frames = clip[:CLIP // 256 * 256].reshape(-1, 256)
    loud = 20 * np.log10(np.maximum(frames.std(axis=1), 1e-10)) >= -60
    assert 1 <= loud.sum() <= 2


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
  # holds part of the sound counts: 40 ms reach into a third frame): a
  # tone repeats from two periods on, a burst of noise never.
  for milliseconds in (10, 20, 30, 40, 50, 80, 200):
    clips.append(np.where(SECONDS < milliseconds / 1000, 0.1 * np.sin(
        2 * np.pi * 330 * SECONDS), 0.0).astype(np.float32))
  for milliseconds in (10, 30, 40):
    clips.append(noise_burst(milliseconds, at_seconds=0.0))
  batch = np.stack(clips)
  expected = [holds_sound(c) for c in clips]
  assert window_params.sounding_numpy(batch).tolist() == expected
  assert windows.sounding(tf.constant(batch)).numpy().tolist() == expected
  assert expected[-10:] == [False, True, True, True, True, True, True,
                            False, False, True]


def test_a_clip_shorter_than_two_frames_holds_no_sound():
  short = (0.5 * np.sin(2 * np.pi * 440 * SECONDS[:200]))[np.newaxis]
  assert not window_params.sounding_numpy(short)[0]
  assert not windows.sounding(tf.constant(short, tf.float32)).numpy()[0]


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


@pytest.mark.slow
def test_the_shortest_soft_top_notes_of_the_libraries_hold_sound():
  """The top notes of the libraries' pianos and xylophones played softer
  than NSynth's softest velocity: many sound for fewer than three frames,
  and each note that has a frame above the floor is heard."""
  from demo_data import libraries
  from demo_data import notes as demo_notes
  from tests.conftest import TINY_LIBRARIES
  clips = []
  for name in TINY_LIBRARIES:
    renderer = demo_notes.NoteRenderer(libraries.BY_NAME[name].path())
    clips += [renderer.render(program, pitch, velocity)
              for program in (0, 13) for pitch in range(100, 109)
              for velocity in (5, 10)]
  clips = np.stack(clips).astype(np.float32)
  frames = clips[:, :CLIP // 256 * 256].reshape(len(clips), -1, 256)
  loud = (20 * np.log10(np.maximum(frames.std(axis=2), 1e-10)) >= -60
          ).sum(axis=1)
  short = (loud >= 1) & (loud < 3)
  assert short.sum() >= 10
  heard = window_params.sounding_numpy(clips)
  assert heard[loud >= 1].all()
  assert windows.sounding(tf.constant(clips[short])).numpy().all()
