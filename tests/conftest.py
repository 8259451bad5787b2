"""Shared fixtures: a tiny rendered NSynth-layout dataset, WAV writers."""

import io
import os
import pathlib
import shutil
import wave

import numpy as np
import pytest

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')  # As the commands do.


def pytest_configure(config):
  config.addinivalue_line(
      'markers', 'slow: end-to-end (subprocesses, training, whole jobs); '
      '`pytest -m "not slow"` runs the fast unit tier')


# Fixtures that run the whole Beam job: every test that needs one, directly
# or through a fixture built on it (a trained job, an export), is end-to-end
# whatever it checks, and belongs to the slow tier without saying so again.
_BEAM_JOB_FIXTURES = frozenset({'tiny_tfrecords', 'default_tfrecords'})


def pytest_collection_modifyitems(items):
  for item in items:
    if _BEAM_JOB_FIXTURES & set(item.fixturenames):
      item.add_marker(pytest.mark.slow)

# A few notes per instrument: renders in about a second.
TINY_PITCH_STEP = 24
TINY_VELOCITIES = (100,)
# The pip-installable libraries: the same on every machine.
TINY_LIBRARIES = ('timgm6mb', 'merlin')


@pytest.fixture(scope='session')
def tiny_demo(tmp_path_factory):
  """A rendered demo dataset: <dir>/nsynth-{train,valid,test}/."""
  from demo_data import notes as demo_notes
  root = tmp_path_factory.mktemp('tiny_demo')
  demo_notes.render_dataset(str(root), TINY_PITCH_STEP, TINY_VELOCITIES,
                        TINY_LIBRARIES)
  return root


@pytest.fixture(scope='session')
def tiny_phrases(tmp_path_factory):
  """Solo phrases of the tiny demo's instruments: <dir>/phrases-<split>/."""
  from demo_data import phrases
  root = tmp_path_factory.mktemp('tiny_phrases')
  phrases.render_phrases(str(root), 1, TINY_LIBRARIES)
  return root


@pytest.fixture
def split_copy(tiny_demo, tmp_path):
  """A writable copy of one split directory, for tests that damage it."""
  def copy(split='valid'):
    destination = tmp_path / f'nsynth-{split}'
    shutil.copytree(tiny_demo / f'nsynth-{split}', destination)
    return destination
  return copy


def wav_bytes(samples: np.ndarray, sample_rate: int = 16000,
              sample_width: int = 2) -> bytes:
  """PCM WAV bytes via the standard library (an independent writer).

  Args:
    samples: float [frames] or [frames, channels] in [-1, 1].
    sample_rate: Hz.
    sample_width: bytes per sample: 1 (unsigned 8-bit), 2, 3 or 4.
  """
  samples = np.asarray(samples, dtype=np.float64)
  if samples.ndim == 1:
    samples = samples[:, np.newaxis]
  scale = float(1 << (8 * sample_width - 1))
  ints = np.clip(np.round(samples * scale), -scale, scale - 1).astype(np.int64)
  if sample_width == 1:
    raw = (ints + 128).astype(np.uint8).tobytes()
  elif sample_width == 3:
    little = ints.astype('<i4').view(np.uint8).reshape(-1, 4)[:, :3]
    raw = little.tobytes()
  else:
    raw = ints.astype(f'<i{sample_width}').tobytes()
  buffer = io.BytesIO()
  with wave.open(buffer, 'wb') as w:
    w.setnchannels(samples.shape[1])
    w.setsampwidth(sample_width)
    w.setframerate(sample_rate)
    w.writeframes(raw)
  return buffer.getvalue()


def float_wav_bytes(samples: np.ndarray, sample_rate: int = 16000) -> bytes:
  """IEEE-float 32-bit WAV, written with soundfile (libsndfile)."""
  import soundfile
  buffer = io.BytesIO()
  soundfile.write(buffer, np.asarray(samples, np.float32), sample_rate,
                  subtype='FLOAT', format='WAV')
  return buffer.getvalue()


def holds_sound(clip, floor_dbfs=-60.0, frame=256, run=3, lags=(32, 128),
                min_repetition=0.6) -> bool:
  """Whether a clip holds sound as a listener judges it, computed apart from
  the product's twins (window_params.sounding_numpy, windows.sounding):
  librosa's frames, each frame's standard deviation, the longest run of
  frames at or above the floor; else, around each loud frame, a direct
  correlation of the sample-to-sample changes with themselves, lag by lag
  (the twins use an FFT)."""
  import librosa
  clip = np.asarray(clip, np.float64)
  padded = np.pad(clip, (0, -len(clip) % frame))
  frames = librosa.util.frame(padded, frame_length=frame, hop_length=frame,
                              axis=0)                       # [F, frame]
  loud = 20 * np.log10(np.maximum(frames.std(axis=1), 1e-10)) >= floor_dbfs
  longest = current = 0
  for frame_loud in loud:
    current = current + 1 if frame_loud else 0
    longest = max(longest, current)
  if longest >= run:
    return True
  for f in range(len(frames) - 1):
    if not (loud[f] or loud[f + 1]):
      continue
    changes = np.diff(np.concatenate([frames[f], frames[f + 1]]))
    total = np.sum(changes ** 2)
    for lag in range(lags[0], min(lags[1], len(changes) - 1) + 1):
      head, tail = changes[:-lag], changes[lag:]
      head_energy, tail_energy = np.sum(head ** 2), np.sum(tail ** 2)
      if total > 0 and min(head_energy, tail_energy) >= 0.25 * total and (
          np.dot(head, tail) / np.sqrt(head_energy * tail_energy)
          >= min_repetition):
        return True
  return False


def read_demo_wav(path) -> np.ndarray:
  with wave.open(str(path), 'rb') as w:
    return np.frombuffer(w.readframes(w.getnframes()), '<i2') / 32768.0


def dataset(output_dir) -> pathlib.Path:
  """The newest complete version the Beam job wrote in `output_dir`."""
  from nsynth_contracts import dataset_versions
  return pathlib.Path(dataset_versions.resolve_data_dir(str(output_dir)))


def _tiny_records(tiny_demo, out, splits, *flags):
  """The Beam job on some of the tiny demo's split directories; the dataset
  version it wrote."""
  from beam_pipelines import nsynth_tfrecords
  inputs = ','.join(str(tiny_demo / f'nsynth-{s}') for s in splits)
  job = nsynth_tfrecords.run([f'--input={inputs}', f'--output_dir={out}',
                              *flags])
  return pathlib.Path(job.dataset_dir)


@pytest.fixture(scope='session')
def tiny_tfrecords(tiny_demo, tmp_path_factory):
  """The Beam job's output on the tiny demo data: a --data_dir for training."""
  # The seed recipe's 20 coefficients: these records exercise the trainer and
  # the export, which take the shape from the manifest; the default (128) is
  # the Beam tests' and make demo's. On 128 seed_cnn has 50M
  # parameters, and the trained-job fixtures took 3 minutes instead of 30 s.
  return _tiny_records(tiny_demo, tmp_path_factory.mktemp('tiny_tfrecords'),
                       ('train', 'valid', 'test'), '--num_shards=2',
                       '--overwrite', '--num_mfcc=20')


@pytest.fixture(scope='session')
def default_tfrecords(tiny_demo, tmp_path_factory):
  """The Beam job's output with every default (the shipped features): what
  the serving tests export a model of."""
  return _tiny_records(tiny_demo, tmp_path_factory.mktemp('default_tfrecords'),
                       ('train', 'valid'))


@pytest.fixture
def tfrecords_copy(tiny_tfrecords, tmp_path):
  """A writable copy of the tiny TFRecords, for tests that damage it."""
  destination = tmp_path / 'tfrecords'
  shutil.copytree(tiny_tfrecords, destination)
  return destination
