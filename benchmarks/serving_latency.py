r"""Benchmark: the seed recipe's predict(filename) vs the exported signature.

Usage:
  python -m benchmarks.serving_latency --export=exports/nsynth_instrument \
      --job_dir=jobs/demo \
      --wav_dir=data/nsynth-demo/nsynth-test/audio \
      [--precision=auto] [--baseline_export=OTHER_EXPORT]

In one run:
  (a) the seed recipe's way to predict one file (the blog post this project
      started from): librosa.load(path) (22,050 Hz) + librosa.feature.mfcc
      (20 coefficients) + model.predict of the blog's CNN (seed_cnn, layer
      for layer; its weights do not change its cost) on that one example;
  (b) the exported serving_default signature on one clip, in --precision
      (its bfloat16 twin for bfloat16):
      latency p50 and p99; with --baseline_export, that export's too (in
      float32, as every export ran before bfloat16), the two side by side,
      each in a process of its own (benchmarks.signature_worker), in
      alternating rounds so that both see the same load;
  (c) the signature's throughput at batch 64, in --precision, beside the
      rate of the features its model reads (the MFCCs, and the pretrained
      embedding when it reads that), computed alone at batch 64 in the same
      precision: the ceiling, as the features are inside the signature;
  (d) where this CPU runs bfloat16: the export's answers in bfloat16
      against float32 on every clip of --wav_dir: how often the family
      agrees, and the largest difference of a probability.
Clips are decoded and featurised as the export's contract says.
"""

import glob
import os
import time

import librosa
import numpy as np
from absl import flags

from benchmarks import signature_worker
from nsynth_common import cli
from nsynth_contracts import audio_decoding
from nsynth_contracts import dataset_versions
from nsynth_contracts import manifest as manifest_lib
from nsynth_contracts import precision


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
  flags.DEFINE_enum('precision', precision.AUTO, list(precision.CHOICES),
                    'What the export runs in for (b) and (c).')
  flags.DEFINE_string('baseline_export', None, 'Another export (a version '
                      'or a model dir), e.g. an earlier commit\'s make demo '
                      'export: (b) runs both side by side.')
  flags.DEFINE_integer('rounds', 10, 'Alternating rounds of (b) when '
                       'comparing.', lower_bound=1)


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
  from nsynth_contracts.clip_features import ClipFeatures
  from serving import predictor
  from serving import signatures
  from trainer import job_layout
  from trainer import layers
  from trainer import models
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
  print(f'export {export_dir}; model {model.name}; {len(paths)} WAV files')
  a50, a99 = percentiles(_seed_recipe_latency(
      paths[:calls], contract.vocabulary.num_classes))
  print(f'(a) seed recipe predict(filename): p50 {a50:7.2f} ms  '
        f'p99 {a99:7.2f} ms')

  with cli.one_line_errors(precision.PrecisionError):
    resolved = precision.resolve(values.precision)
  _side_by_side(export_dir, resolved, paths[:calls], a50)
  clips = np.stack([audio_decoding.decode_clip(open(p, 'rb').read(), params)
                    for p in paths[:max(calls, 64)]])
  batch = tf.constant(clips[:64])
  serve = loaded.signatures[signatures.in_precision(
      signatures.AUDIO_SIGNATURE, resolved)]
  rate_c = _rate(lambda b: serve(audio=b)[signatures.PROBABILITIES].numpy(),
                 batch, values.seconds)
  clip_features = ClipFeatures.for_inputs(layers.input_names(model), manifest,
                                         resolved)
  features_fn = tf.function(clip_features)
  ceiling = _rate(lambda b: tf.nest.map_structure(
      lambda t: t.numpy(), features_fn(b)), batch, values.seconds)
  print(f'(c) signature at batch 64, {resolved}: {rate_c:7.1f} clips/s; its '
        f'features ({", ".join(clip_features.names)}) alone at batch 64: '
        f'{ceiling:7.1f} clips/s ({rate_c / ceiling:.2f} of that ceiling)')
  if (precision.bfloat16_unavailable_reason() is None and
      signatures.in_precision(signatures.AUDIO_SIGNATURE, precision.BFLOAT16)
      in loaded.signatures):
    _agreement(export_dir, paths)


def _side_by_side(export_dir: str, resolved: str, paths: list[str],
                  seed_p50: float) -> None:
  """(b): the export's latency on one clip (the baseline's beside it)."""
  values = flags.FLAGS
  exports = {f'this export, {resolved}': (export_dir, resolved)}
  if values.baseline_export:
    from serving import predictor
    exports['baseline, float32'] = (
        predictor.resolve_export(values.baseline_export), precision.FLOAT32)
  workers = {name: signature_worker.Worker(path, arithmetic)
             for name, (path, arithmetic) in exports.items()}
  seconds = {name: [] for name in workers}
  try:
    for worker in workers.values():   # load, trace, warm up
      worker.ask({'latencies': paths[:5]})
    rounds = values.rounds if values.baseline_export else 1
    for r in range(rounds):
      share = paths[r::rounds]
      for name, worker in workers.items():
        seconds[name] += worker.ask({'latencies': share})
  finally:
    for worker in workers.values():
      worker.close()
  p50s = {}
  for name, measured in seconds.items():
    p50s[name], p99 = percentiles(measured)
    print(f'(b) signature, one clip, {name}: p50 {p50s[name]:7.2f} ms  p99 '
          f'{p99:7.2f} ms -> p50 {seed_p50 / p50s[name]:.1f}x faster than (a)')
  if values.baseline_export:
    ratio = p50s['baseline, float32'] / p50s[f'this export, {resolved}']
    print(f'    side by side: p50 {ratio:.2f}x faster than the baseline '
          f'export (target >= 2.5x)')


def _agreement(export_dir: str, paths: list[str]) -> None:
  """(d): bfloat16 against float32 on every clip."""
  answers = {}
  for arithmetic in (precision.FLOAT32, precision.BFLOAT16):
    worker = signature_worker.Worker(export_dir, arithmetic)
    try:
      answers[arithmetic] = np.asarray(worker.ask({'probabilities': paths}))
    finally:
      worker.close()
  exact, fast = answers[precision.FLOAT32], answers[precision.BFLOAT16]
  agree = np.mean(exact.argmax(1) == fast.argmax(1))
  print(f'(d) bfloat16 against float32 on {len(paths)} clips: the same family '
        f'for {agree:.2%} (target >= 99.5%); the largest difference of a '
        f'probability {np.abs(exact - fast).max():.4f}')


def main() -> None:
  cli.run(_define_flags, _main, tensorflow=True)


if __name__ == '__main__':
  main()
