r"""Benchmark: recordings, not notes. Which aggregation, and at what cost.

Usage:
  python -m benchmarks.long_audio --job_dir=jobs/demo \
      --export=exports/nsynth_instrument \
      --phrases=data/nsynth-demo/phrases-test [--repeats=20]

(a) On held-out phrases (instruments never trained on), the model's window
    probabilities are aggregated four ways: mean of probabilities, mean of
    log-probabilities (what serving uses), a confidence-weighted mean, and a
    majority vote. Prints phrase-level accuracy and macro-F1 of each beside
    the note-level accuracy of the same instruments' test notes, and the
    target: phrase accuracy >= note accuracy + 0.05.
(b) A 60 s recording through serving_long_audio against the same minute as
    15 separate 4-second windows through serving_default (one request
    each), in one run: median seconds and the ratio (target <= 3).
"""

import statistics
import time

import numpy as np
from absl import flags

from nsynth_common import cli


def _define_flags() -> None:
  flags.DEFINE_string('job_dir', None, 'A trainer --job_dir.',
                      required=True)
  flags.DEFINE_string('export', None, 'Its export (model dir or version '
                      'dir): the phrases are prepared as its contract says.',
                      required=True)
  flags.DEFINE_string('phrases', None, 'Held-out phrases (labels.json + '
                      'audio/).', required=True)
  flags.DEFINE_integer('repeats', 20, 'Timed runs of each way.')


def aggregations(window_probabilities: np.ndarray) -> dict[str, np.ndarray]:
  """float [W, classes] -> {way: float [classes]}."""
  p = window_probabilities
  log_mean = np.log(np.maximum(p, 1e-7)).mean(axis=0)
  confidence = p.max(axis=1, keepdims=True)   # windows sure of themselves
  votes = np.bincount(p.argmax(axis=1), minlength=p.shape[1])
  return {
      'mean of probabilities': p.mean(axis=0),
      'mean of log-probabilities (served)': np.exp(log_mean - log_mean.max()),
      'confidence-weighted mean': (confidence * p).sum(0) / confidence.sum(),
      'majority vote': votes + 1e-3 * p.mean(axis=0),  # ties: mean decides
  }


def _phrase_report(job_dir: str, phrases_dir: str, loaded,
                   export_dir: str) -> None:
  """(a): the phrases prepared as the export's contract says."""
  from nsynth_contracts import clip_features
  from nsynth_contracts import dataset_versions
  from nsynth_contracts import manifest as manifest_lib
  from serving import signatures
  from trainer import job_layout
  from trainer import layers
  from trainer import metrics
  from trainer import models
  from trainer import phrases
  from trainer import report
  config = job_layout.read_job_config(job_dir)
  data_dir = dataset_versions.resolve_data_dir(config['data_dir'])
  manifest = manifest_lib.read(data_dir)
  contract = signatures.read_contract(loaded, export_dir)
  if (contract.feature_params, contract.vocabulary) != (
      manifest.feature_params, manifest.vocabulary):
    raise cli.UserError(f'--export {export_dir} was made with other features '
                        f'or families than the data of --job_dir {job_dir}')
  families = contract.vocabulary.families
  model = models.load(job_layout.best_model_path(job_dir))
  predicted = phrases.predict_phrases(
      model, phrases_dir, contract.vocabulary, contract.feature_params,
      contract.windows, clip_features.ClipFeatures.for_inputs(
          layers.input_names(model), manifest))
  true_ids = np.array([families.index(p.true_family) for p in predicted])
  notes = report.evaluate_split(model, data_dir, manifest, 'test')
  same = np.isin(notes.instruments, [p.instrument_str for p in predicted])
  note_accuracy = float((notes.probabilities[same].argmax(1) ==
                         notes.true_ids[same]).mean())
  print(f'(a) {len(predicted)} held-out phrases '
        f'({sum(len(p.window_probabilities) for p in predicted)} windows) of '
        f'{len({p.instrument_str for p in predicted})} instruments never '
        f'trained on; their {int(same.sum())} test notes: accuracy '
        f'{note_accuracy:.3f}')
  print(f'  {"aggregation":<36} {"accuracy":>8} {"macro-F1":>8} '
        f'{"vs notes":>9}')
  for way in aggregations(predicted[0].window_probabilities):
    scores = np.stack([aggregations(p.window_probabilities)[way]
                       for p in predicted])
    figures = metrics.classification_report(
        true_ids, scores / scores.sum(1, keepdims=True), families)
    print(f'  {way:<36} {figures["accuracy"]:8.3f} '
          f'{figures["macro_f1"]:8.3f} '
          f'{figures["accuracy"] - note_accuracy:+9.3f}')
  print('  target: phrase accuracy >= note accuracy + 0.05')


def _median_seconds(fn, repeats: int) -> float:
  fn()  # warm up
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def _timings(loaded, export_dir: str, repeats: int) -> None:
  """(b): a minute as one recording, and as its separate clips."""
  import tensorflow as tf

  from serving import signatures
  params = signatures.read_contract(loaded, export_dir).feature_params
  serve_notes = loaded.signatures[signatures.AUDIO_SIGNATURE]
  serve_recording = loaded.signatures[signatures.LONG_AUDIO_SIGNATURE]
  rng = np.random.default_rng(0)
  minute = (0.3 * rng.standard_normal(60 * params.sample_rate_hz)).astype(
      np.float32)
  clip = params.clip_samples
  clips = [minute[i:i + clip][np.newaxis]
           for i in range(0, len(minute) - clip + 1, clip)]

  def one_recording():
    serve_recording(audio=tf.constant(minute))

  def separate_clips():
    for one in clips:
      serve_notes(audio=tf.constant(one))

  timings = {
      'serving_long_audio, one 60 s request': _median_seconds(
          one_recording, repeats),
      f'serving_default, {len(clips)} requests of {params.clip_seconds:g} s':
          _median_seconds(separate_clips, repeats),
  }
  print('(b) a 60 s recording, median of', repeats, 'runs:')
  for name, seconds in timings.items():
    print(f'  {name:<38} {seconds * 1000:8.1f} ms')
  long_ms, notes_ms = timings.values()
  print(f'  ratio {long_ms / notes_ms:.2f} (target <= 3): the long signature '
        f'runs a window every hop where the notes run one per clip')


def _main(argv: list[str]) -> None:
  cli.no_arguments(argv)
  # Imported here, not at the top: TensorFlow reads its log level when it
  # is imported, and cli.run sets it before calling this (the helpers above
  # import what they use likewise).
  import tensorflow as tf

  from nsynth_contracts import serving_contract
  from serving import predictor
  from trainer import job_layout
  values = flags.FLAGS
  with cli.one_line_errors(predictor.ModelNotFoundError,
                           serving_contract.ContractError,
                           job_layout.JobDirError):
    export_dir = predictor.resolve_export(values.export)
    loaded = tf.saved_model.load(export_dir)
    _phrase_report(values.job_dir, values.phrases, loaded, export_dir)
    _timings(loaded, export_dir, values.repeats)


def main() -> None:
  cli.run(_define_flags, _main, tensorflow=True)


if __name__ == '__main__':
  main()
