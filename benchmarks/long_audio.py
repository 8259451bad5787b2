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

# First: it quiets TensorFlow's start-up, as the commands do.
from nsynth_contracts import cli  # noqa: F401

# isort: split

import statistics
import time

import numpy as np
from absl import app
from absl import flags

_JOB_DIR = flags.DEFINE_string('job_dir', None, 'A trainer --job_dir.',
                               required=True)
_EXPORT = flags.DEFINE_string('export', None, 'Its export (model dir or '
                              'version dir).', required=True)
_PHRASES = flags.DEFINE_string('phrases', None, 'Held-out phrases '
                               '(labels.json + audio/).', required=True)
_REPEATS = flags.DEFINE_integer('repeats', 20, 'Timed runs of each way.')


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


def main(argv):
  del argv
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  from nsynth_contracts import manifest as manifest_lib  # pylint: disable=g-import-not-at-top
  from serving import predict  # pylint: disable=g-import-not-at-top
  from serving import signatures  # pylint: disable=g-import-not-at-top
  from trainer import evaluate  # pylint: disable=g-import-not-at-top
  from trainer import job_layout  # pylint: disable=g-import-not-at-top
  from trainer import metrics  # pylint: disable=g-import-not-at-top
  from trainer import models  # pylint: disable=g-import-not-at-top
  from trainer import phrases  # pylint: disable=g-import-not-at-top

  config = job_layout.read_job_config(_JOB_DIR.value)
  manifest = manifest_lib.read(config['data_dir'])
  families = manifest.vocabulary.families
  model = models.load(job_layout.best_model_path(_JOB_DIR.value))
  predicted = phrases.predict_phrases(model, _PHRASES.value,
                                      manifest.vocabulary,
                                      manifest.feature_params)
  true_ids = np.array([families.index(p.true_family) for p in predicted])
  notes = evaluate.evaluate_split(
      model, config['data_dir'], manifest, 'test')
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
    report = metrics.classification_report(
        true_ids, scores / scores.sum(1, keepdims=True), families)
    print(f'  {way:<36} {report["accuracy"]:8.3f} {report["macro_f1"]:8.3f} '
          f'{report["accuracy"] - note_accuracy:+9.3f}')
  print('  target: phrase accuracy >= note accuracy + 0.05')

  export_dir = predict.resolve_export(_EXPORT.value)
  loaded = tf.saved_model.load(export_dir)
  serve_notes = loaded.signatures[signatures.AUDIO_SIGNATURE]
  serve_recording = loaded.signatures[signatures.LONG_AUDIO_SIGNATURE]
  rng = np.random.default_rng(0)
  minute = (0.3 * rng.standard_normal(60 * 16000)).astype(np.float32)
  windows = [minute[i * 64000:(i + 1) * 64000][np.newaxis] for i in range(15)]

  def one_recording():
    serve_recording(audio=tf.constant(minute))

  def fifteen_notes():
    for window in windows:
      serve_notes(audio=tf.constant(window))

  timings = {}
  for name, fn in (('serving_long_audio, one 60 s request', one_recording),
                   ('serving_default, 15 requests of 4 s', fifteen_notes)):
    fn()  # warm up
    times = []
    for _ in range(_REPEATS.value):
      start = time.perf_counter()
      fn()
      times.append(time.perf_counter() - start)
    timings[name] = statistics.median(times)
  print('(b) a 60 s recording, median of', _REPEATS.value, 'runs:')
  for name, seconds in timings.items():
    print(f'  {name:<38} {seconds * 1000:8.1f} ms')
  long_ms, notes_ms = timings.values()
  print(f'  ratio {long_ms / notes_ms:.2f} (target <= 3): the long signature '
        f'runs 29 windows (every 2 s) where the notes run 15')


if __name__ == '__main__':
  app.run(main)
