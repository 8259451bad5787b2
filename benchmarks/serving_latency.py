r"""Benchmark: the blog's predict(filename) vs the exported signature.

Usage:
  python -m benchmarks.serving_latency --export=exports/nsynth_instrument \
      --job_dir=jobs/demo \
      --wav_dir=data/nsynth-demo/nsynth-test/audio

In one run:
  (a) the blog's way to predict one file: librosa.load(path) (22,050 Hz) +
      librosa.feature.mfcc + model.predict on that one example (the Keras
      model sees the first 126 frames: it is the cost that is compared);
  (b) the exported serving_default signature on one 4 s clip: latency p50
      and p99;
  (c) the signature's throughput at batch 64, beside the bare feature
      function's rate at batch 64 (the ceiling: features are inside).
"""

# First: it quiets TensorFlow's start-up, as the commands do.
from nsynth_contracts import cli  # noqa: F401

# isort: split

import glob
import os
import time

import numpy as np
from absl import app
from absl import flags

_EXPORT = flags.DEFINE_string('export', 'exports/nsynth_instrument',
                              'Export dir (a version or a model dir).')
_JOB_DIR = flags.DEFINE_string('job_dir', 'jobs/demo',
                               'The trainer job whose Keras model (a) uses.')
_WAV_DIR = flags.DEFINE_string('wav_dir', 'data/nsynth-demo/nsynth-test/audio',
                               'WAV files to predict.')
_CALLS = flags.DEFINE_integer('calls', 200, 'Single-clip calls for (a), (b).')
_SECONDS = flags.DEFINE_float('seconds', 10.0, 'Time for (c).')


def percentiles(seconds):
  ms = np.asarray(seconds) * 1000
  return np.percentile(ms, 50), np.percentile(ms, 99)


def main(argv):
  del argv
  import librosa  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  from nsynth_contracts import audio_decoding  # pylint: disable=g-import-not-at-top
  from nsynth_contracts import features  # pylint: disable=g-import-not-at-top
  from nsynth_contracts import manifest as manifest_lib  # pylint: disable=g-import-not-at-top
  from serving import predict  # pylint: disable=g-import-not-at-top
  from serving import signatures  # pylint: disable=g-import-not-at-top
  from trainer import job_layout  # pylint: disable=g-import-not-at-top
  from trainer import models  # pylint: disable=g-import-not-at-top

  paths = sorted(glob.glob(os.path.join(_WAV_DIR.value, '*.wav')))
  calls = min(_CALLS.value, len(paths))
  model = models.load(job_layout.best_model_path(_JOB_DIR.value))
  # The blog kept librosa's default 20 coefficients; the model takes as many
  # as its records have (the manifest's), so the blog's way asks for those.
  num_mfcc = manifest_lib.read(job_layout.read_job_config(_JOB_DIR.value)[
      'data_dir']).feature_params.num_mfcc
  export_dir = predict.resolve_export(_EXPORT.value)
  serve = tf.saved_model.load(export_dir).signatures[
      signatures.AUDIO_SIGNATURE]
  print(f'export {export_dir}; model {model.name}; {len(paths)} WAV files')

  def blog_predict(path):
    y, sr = librosa.load(path)
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=num_mfcc)  # [C, 173]
    return model.predict(mfcc.T[np.newaxis, :126], verbose=0)

  blog_predict(paths[0])
  blog = []
  for path in paths[:calls]:
    start = time.perf_counter()
    blog_predict(path)
    blog.append(time.perf_counter() - start)
  a50, a99 = percentiles(blog)
  print(f'(a) blog predict(filename): p50 {a50:7.2f} ms  p99 {a99:7.2f} ms')

  clips = np.stack([audio_decoding.decode_clip(open(p, 'rb').read())
                    for p in paths[:max(calls, 64)]])
  serve(audio=tf.constant(clips[:1]))
  single = []
  for clip in clips[:calls]:
    batch = tf.constant(clip[np.newaxis])
    start = time.perf_counter()
    serve(audio=batch)[signatures.PROBABILITIES].numpy()
    single.append(time.perf_counter() - start)
  b50, b99 = percentiles(single)
  print(f'(b) signature, one 4 s clip: p50 {b50:7.2f} ms  p99 {b99:7.2f} ms  '
        f'-> p50 {a50 / b50:.1f}x faster than (a) (target >= 10x)')

  batch = tf.constant(clips[:64])
  serve(audio=batch)
  done, start = 0, time.perf_counter()
  while time.perf_counter() - start < _SECONDS.value:
    serve(audio=batch)[signatures.PROBABILITIES].numpy()
    done += 64
  rate_c = done / (time.perf_counter() - start)
  mfcc_fn = tf.function(features.waveform_to_mfcc)
  mfcc_fn(batch)
  done, start = 0, time.perf_counter()
  while time.perf_counter() - start < _SECONDS.value:
    mfcc_fn(batch).numpy()
    done += 64
  ceiling = done / (time.perf_counter() - start)
  print(f'(c) signature at batch 64: {rate_c:7.1f} clips/s (target >= 300); '
        f'features alone at batch 64: {ceiling:7.1f} clips/s '
        f'({rate_c / ceiling:.2f} of that ceiling)')


if __name__ == '__main__':
  app.run(main)
