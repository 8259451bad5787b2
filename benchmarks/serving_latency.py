r"""Benchmark: the seed recipe's predict(filename) vs the exported signature.

Usage:
  python -m benchmarks.serving_latency --export=exports/nsynth_instrument \
      --job_dir=jobs/demo \
      --wav_dir=data/nsynth-demo/nsynth-test/audio

In one run:
  (a) the seed recipe's way to predict one file (the blog post this project
      started from): librosa.load(path) (22,050 Hz) + librosa.feature.mfcc
      (20 coefficients) + model.predict of the blog's CNN (seed_cnn, layer
      for layer; its weights do not change its cost) on that one example;
  (b) the exported serving_default signature on one clip: latency p50 and
      p99;
  (c) the signature's throughput at batch 64, beside the rate of the
      features its model reads (the MFCCs, and the pretrained embedding
      when it reads that), computed alone at batch 64: the ceiling, as the
      features are inside the signature.
Clips are decoded and featurised as the export's contract says.
"""

import glob
import os
import time

import librosa
import numpy as np
from absl import flags

from nsynth_contracts import audio_decoding
from nsynth_contracts import cli
from nsynth_contracts import dataset_versions
from nsynth_contracts import manifest as manifest_lib


def _define_flags() -> None:
  flags.DEFINE_string('export', 'exports/nsynth_instrument',
                      'Export dir (a version or a model dir).')
  flags.DEFINE_string('job_dir', 'jobs/demo',
                      'The trainer job of the export: which features its '
                      'model reads, for the ceiling of (c).')
  flags.DEFINE_string('wav_dir', 'data/nsynth-demo/nsynth-test/audio',
                      'WAV files to predict.')
  flags.DEFINE_integer('calls', 200, 'Single-clip calls for (a), (b).')
  flags.DEFINE_float('seconds', 10.0, 'Time for (c).')


def percentiles(seconds):
  ms = np.asarray(seconds) * 1000
  return np.percentile(ms, 50), np.percentile(ms, 99)


SEED_MFCC = 20           # librosa's default, as the blog kept it
SEED_FRAMES = 126


def _seed_recipe_latency(paths, num_classes: int) -> list[float]:
  """(a): seconds per file, librosa and the blog's model.predict on one
  example."""
  import keras

  from trainer import models
  model = models.seed_cnn((SEED_FRAMES, SEED_MFCC), num_classes,
                          keras.layers.Normalization(mean=0.0, variance=1.0))

  def predict_file(path):
    y, sr = librosa.load(path)
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=SEED_MFCC)  # [20, 173]
    return model.predict(mfcc.T[np.newaxis, :SEED_FRAMES], verbose=0)

  predict_file(paths[0])
  seconds = []
  for path in paths:
    start = time.perf_counter()
    predict_file(path)
    seconds.append(time.perf_counter() - start)
  return seconds


def _rate(fn, batch, seconds: float) -> float:
  """Clips per second of fn(batch) over `seconds`, after a warm-up."""
  fn(batch)
  done, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds:
    fn(batch)
    done += len(batch)
  return done / (time.perf_counter() - start)


def _main(argv: list[str]) -> None:
  cli.no_arguments(argv)
  # Imported here, not at the top: TensorFlow reads its log level when it
  # is imported, and cli.run sets it before calling this.
  import tensorflow as tf

  from nsynth_contracts import serving_contract
  from serving import predictor
  from serving import signatures
  from trainer import job_layout
  from trainer import models
  from trainer.clip_features import ClipFeatures
  values = flags.FLAGS
  paths = sorted(glob.glob(os.path.join(values.wav_dir, '*.wav')))
  calls = min(values.calls, len(paths))
  with cli.one_line_errors(predictor.ModelNotFoundError,
                           serving_contract.ContractError,
                           job_layout.JobDirError):
    manifest = manifest_lib.read(dataset_versions.resolve_data_dir(
        job_layout.read_job_config(values.job_dir)['data_dir']))
    model = models.load(job_layout.best_model_path(values.job_dir))
    export_dir = predictor.resolve_export(values.export)
    loaded = tf.saved_model.load(export_dir)
    contract = signatures.read_contract(loaded, export_dir)
    params = contract.feature_params
  serve = loaded.signatures[signatures.AUDIO_SIGNATURE]
  print(f'export {export_dir}; model {model.name}; {len(paths)} WAV files')
  a50, a99 = percentiles(_seed_recipe_latency(
      paths[:calls], contract.vocabulary.num_classes))
  print(f'(a) seed recipe predict(filename): p50 {a50:7.2f} ms  '
        f'p99 {a99:7.2f} ms')

  clips = np.stack([audio_decoding.decode_clip(open(p, 'rb').read(), params)
                    for p in paths[:max(calls, 64)]])
  single = []
  for clip in clips[:calls]:
    one = tf.constant(clip[np.newaxis])
    start = time.perf_counter()
    serve(audio=one)[signatures.PROBABILITIES].numpy()
    single.append(time.perf_counter() - start)
  b50, b99 = percentiles(single)
  print(f'(b) signature, one {params.clip_seconds:g} s clip: p50 {b50:7.2f} '
        f'ms  p99 {b99:7.2f} ms -> p50 {a50 / b50:.1f}x faster than (a) '
        f'(target >= 2x)')

  batch = tf.constant(clips[:64])
  rate_c = _rate(lambda b: serve(audio=b)[signatures.PROBABILITIES].numpy(),
                 batch, values.seconds)
  clip_features = ClipFeatures.for_model(model, manifest)
  features_fn = tf.function(clip_features)
  ceiling = _rate(lambda b: tf.nest.map_structure(
      lambda t: t.numpy(), features_fn(b)), batch, values.seconds)
  print(f'(c) signature at batch 64: {rate_c:7.1f} clips/s; its features '
        f'({", ".join(clip_features.names)}) alone at batch 64: '
        f'{ceiling:7.1f} clips/s ({rate_c / ceiling:.2f} of that ceiling)')


def main() -> None:
  cli.run(_define_flags, _main, tensorflow=True)


if __name__ == '__main__':
  main()
