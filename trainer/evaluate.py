r"""Evaluation report: metrics, per-family scores, confusion matrix, curves.

Usage:
  nsynth-evaluate --job_dir=jobs/demo --split=test [--split=valid]
      [--phrases=data/nsynth-demo/phrases-test]

Writes into `<job_dir>/eval/`: `<split>_metrics.json` (accuracy, loss,
macro-F1 and per-family precision/recall/F1 as scikit-learn defines them, the
confusion matrix, accuracy sliced by source and by pitch range, and the split
method, stated honestly), `<split>_confusion.png`, `<split>_slices.png`,
`<split>_examples.png` (the MFCCs of one note per family with what the model
made of it), and `curves.png` from the training history. The confusion
matrices, headline figures and hyperparameters also go to TensorBoard
(`<job_dir>/logs/report`).
"""

# First: as a command, this quiets TensorFlow before anything imports it.
from nsynth_contracts import cli

# isort: split

import csv
import dataclasses
import io
import posixpath
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from nsynth_contracts import manifest as manifest_lib
from nsynth_contracts import schema
from trainer import job_layout
from trainer import metrics
from trainer import report_plots

EVAL_DIR = job_layout.EVAL_DIR
HISTORY_CSV = job_layout.HISTORY_CSV


def read_history(job_dir: str) -> list[dict]:
  """history.csv, one row per epoch (a resumed run's repeat kept last)."""
  path = job_layout.path(job_dir, HISTORY_CSV)
  if not tf.io.gfile.exists(path):
    return []
  by_epoch = {}
  with tf.io.gfile.GFile(path, 'r') as f:
    for row in csv.DictReader(io.StringIO(f.read())):
      if row.get('epoch', 'epoch') == 'epoch':
        continue  # A header repeated by CSVLogger after a resume.
      by_epoch[int(row['epoch'])] = {k: float(v) for k, v in row.items()
                                     if v not in ('', None)}
  return [by_epoch[e] for e in sorted(by_epoch)]


@dataclasses.dataclass(frozen=True)
class SplitPredictions:
  """What a model said about every note of one split."""
  true_ids: np.ndarray                # int [N]
  probabilities: np.ndarray           # float [N, classes]
  sources: np.ndarray                 # str [N]
  pitches: np.ndarray                 # int [N]
  examples: dict[int, np.ndarray]     # label id -> MFCC of its first note
  instruments: np.ndarray             # str [N]


def write_report(job_dir: str, split: str, predictions: SplitPredictions,
                 manifest: manifest_lib.Manifest, model_name: str,
                 train_split: str) -> dict:
  """Writes `<split>_metrics.json` and the split's pictures; returns the
  metrics.

  Pictures: `<split>_confusion.png`, `<split>_slices.png` (accuracy by
  source and by pitch range) and `<split>_examples.png` (one note per
  family), and `curves.png` from the training history.
  """
  out_dir = job_layout.path(job_dir, EVAL_DIR)
  tf.io.gfile.makedirs(out_dir)
  families = manifest.vocabulary.families
  p = predictions
  report = metrics.classification_report(p.true_ids, p.probabilities,
                                         families)
  predicted = p.probabilities.argmax(axis=1)
  report.update({
      'split': split,
      'model': model_name,
      'split_method': manifest.split_method.name,
      'split_statement': metrics.honest_split_statement(manifest, split,
                                                        train_split),
      'instruments': manifest.splits[split].num_instruments,
      'libraries': manifest.splits[split].libraries,
      'slices': {
          'source': metrics.sliced_accuracy(p.true_ids, predicted, p.sources),
          'pitch_range': metrics.sliced_accuracy(
              p.true_ids, predicted, metrics.pitch_ranges(p.pitches)),
      },
  })
  job_layout.write_json(job_layout.path(out_dir, f'{split}_metrics.json'),
                        report)
  disjoint = manifest.split_method.instrument_disjoint
  report_plots.plot_confusion(
      report, f'{model_name} on {split}: accuracy {report["accuracy"]:.3f} '
      f'({report["num_examples"]} notes)\n{report["split_method"]} split, '
      f'instrument-disjoint: {disjoint}',
      job_layout.path(out_dir, f'{split}_confusion.png'))
  report_plots.plot_slices(
      report['slices'], f'{model_name} on {split}: where it fails',
      job_layout.path(out_dir, f'{split}_slices.png'))
  if p.examples:
    first_index = {label: int(np.flatnonzero(p.true_ids == label)[0])
                   for label in p.examples}
    report_plots.plot_examples(
        p.examples, p.true_ids, p.probabilities, first_index, families,
        f'{model_name} on {split}: the first note of each family',
        job_layout.path(out_dir, f'{split}_examples.png'))
  history = read_history(job_dir)
  if history:
    report_plots.plot_curves(history, f'{model_name} training curves',
                             job_layout.path(out_dir, 'curves.png'))
  return report


def evaluate_split(model, data_dir: str, manifest: manifest_lib.Manifest,
                   split: str, batch_size: int = 256) -> SplitPredictions:
  """The model's predictions for every note of one split.

  Raises:
    input_pipeline.DataError: a record is damaged or its label is outside
      the vocabulary, naming the file.
  """
  from trainer import input_pipeline  # pylint: disable=g-import-not-at-top
  files = input_pipeline.split_files(data_dir, manifest, split)
  dataset = input_pipeline.make_dataset(files, manifest, batch_size,
                                        with_metadata=True)
  true_ids, probabilities, sources, pitches, examples = [], [], [], [], {}
  instruments = []
  try:
    for mfcc, one_hot, metadata in dataset:
      probabilities.append(model(mfcc, training=False).numpy())
      ids = one_hot.numpy().argmax(axis=1)
      true_ids.append(ids)
      sources.append(metadata[schema.SOURCE].numpy().astype(str))
      pitches.append(metadata[schema.PITCH].numpy())
      instruments.append(metadata[schema.INSTRUMENT].numpy().astype(str))
      for row, label in enumerate(ids):
        examples.setdefault(int(label), mfcc[row].numpy())
  except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as e:
    raise input_pipeline.data_error(e, files, manifest) from None
  return SplitPredictions(np.concatenate(true_ids),
                          np.concatenate(probabilities),
                          np.concatenate(sources), np.concatenate(pitches),
                          examples, np.concatenate(instruments))


def write_tensorboard(job_dir: str, config: dict,
                      reports: dict[str, dict]) -> None:
  """The report beside the training curves: each split's confusion matrix
  as an image, its headline figures, and the run's hyperparameters (the
  HPARAMS tab) under `logs/report`."""
  from tensorboard.plugins.hparams import api as hparams_api  # pylint: disable=g-import-not-at-top
  writer = tf.summary.create_file_writer(
      job_layout.path(job_dir, job_layout.LOGS_DIR, 'report'))
  hyperparameters = {k: (v if isinstance(v, (bool, int, float, str))
                         else str(v)) for k, v in config.items()}
  with writer.as_default():
    hparams_api.hparams(hyperparameters)
    for split, report in reports.items():
      for key in ('accuracy', 'macro_f1', 'loss'):
        tf.summary.scalar(f'report/{split}_{key}', report[key], step=0)
      png = job_layout.path(job_dir, EVAL_DIR, f'{split}_confusion.png')
      with tf.io.gfile.GFile(png, 'rb') as f:
        image = tf.io.decode_png(f.read(), channels=3)
      tf.summary.image(f'confusion/{split}', image[tf.newaxis], step=0)
      tf.summary.text(f'split/{split}', report['split_statement'], step=0)
  writer.close()


def evaluate_job(job_dir: str, splits: Sequence[str],
                 data_dir: str | None = None) -> dict[str, dict]:
  """Loads a job's best model and writes the report for each split."""
  from trainer import models  # pylint: disable=g-import-not-at-top
  config = job_layout.read_job_config(job_dir)
  data_dir = data_dir or config['data_dir']
  manifest = manifest_lib.read(data_dir)
  best = job_layout.best_model_path(job_dir)
  if not tf.io.gfile.exists(best):
    raise job_layout.JobDirError(f'{best} does not exist: the run in '
                                 f'{job_dir} has not finished an epoch')
  model = models.load(best)
  reports = {}
  for split in splits:
    predictions = evaluate_split(model, data_dir, manifest, split)
    reports[split] = write_report(job_dir, split, predictions, manifest,
                                  config['model'], config['train_split'])
  write_tensorboard(job_dir, config, reports)
  return reports


def evaluate_phrases(job_dir: str, phrases_dir: str, note_split: str = 'test',
                     data_dir: str | None = None) -> dict:
  """Phrase-level accuracy, macro-F1 and confusion of the job's best model on
  a directory of labelled recordings, beside the note-level accuracy of the
  same instruments' notes in `note_split`. Writes
  `eval/phrases_<dir name>_metrics.json` and `..._confusion.png`."""
  from trainer import models  # pylint: disable=g-import-not-at-top
  from trainer import phrases  # pylint: disable=g-import-not-at-top
  config = job_layout.read_job_config(job_dir)
  data_dir = data_dir or config['data_dir']
  manifest = manifest_lib.read(data_dir)
  model = models.load(job_layout.best_model_path(job_dir))
  families = manifest.vocabulary.families
  predicted = phrases.predict_phrases(model, phrases_dir, manifest.vocabulary,
                                      manifest.feature_params)
  if not predicted:
    raise cli.UserError(f'{phrases_dir} holds no sounding recording of a '
                        f'family the model knows')
  true_ids = np.array([families.index(p.true_family) for p in predicted])
  report = metrics.classification_report(
      true_ids, phrases.phrase_probabilities(predicted), families)
  notes = evaluate_split(model, data_dir, manifest, note_split)
  same = np.isin(notes.instruments, [p.instrument_str for p in predicted])
  name = posixpath.basename(phrases_dir.rstrip('/'))
  report.update({
      'phrases': phrases_dir,
      'windows': int(sum(len(p.window_probabilities) for p in predicted)),
      'note_split': note_split,
      'notes_of_the_same_instruments': int(same.sum()),
      'note_accuracy_same_instruments': float(
          (notes.probabilities[same].argmax(1) == notes.true_ids[same]).mean())
      if same.any() else None,
  })
  out_dir = job_layout.path(job_dir, EVAL_DIR)
  tf.io.gfile.makedirs(out_dir)
  job_layout.write_json(job_layout.path(out_dir,
                                        f'phrases_{name}_metrics.json'), report)
  report_plots.plot_confusion(
      report, f'{config["model"]} on the phrases of {name}: accuracy '
      f'{report["accuracy"]:.3f} ({report["num_examples"]} phrases)',
      job_layout.path(out_dir, f'phrases_{name}_confusion.png'))
  return report


def print_headline(reports: dict[str, dict], job_dir: str) -> None:
  for split, report in reports.items():
    libraries = ', '.join(report.get('libraries') or {}) or 'no library named'
    print(f'{split:>6}: accuracy {report["accuracy"]:.3f}  loss '
          f'{report["loss"]:.3f}  macro-F1 {report["macro_f1"]:.3f}  '
          f'({report["num_examples"]} records of {report["instruments"]} '
          f'instruments from {libraries}; {report["split_statement"]})')
  print(f'Report, confusion matrices and curves: '
        f'{job_layout.path(job_dir, EVAL_DIR)}/')


def _define_flags() -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string('job_dir', None, 'A trainer --job_dir.', required=True)
  flags.DEFINE_multi_string('split', ['test'], 'Splits to evaluate.')
  flags.DEFINE_string('data_dir', None,
                      'TFRecords to evaluate on (default: the job\'s own).')
  flags.DEFINE_list('phrases', [], 'Directories of labelled recordings '
                    '(labels.json + audio/, e.g. phrases-test): also report '
                    'phrase-level accuracy, macro-F1 and confusion, beside '
                    'the note-level accuracy of the same instruments in the '
                    'first --split.')


def _main(argv: list[str]) -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  if len(argv) > 1:
    raise cli.UserError(f'unexpected arguments {argv[1:]}')
  reports = evaluate_job(flags.FLAGS.job_dir, flags.FLAGS.split,
                         flags.FLAGS.data_dir)
  print_headline(reports, flags.FLAGS.job_dir)
  for directory in flags.FLAGS.phrases:
    report = evaluate_phrases(flags.FLAGS.job_dir, directory,
                              flags.FLAGS.split[0], flags.FLAGS.data_dir)
    notes = report['note_accuracy_same_instruments']
    print(f'phrases of {directory}: accuracy {report["accuracy"]:.3f}  '
          f'macro-F1 {report["macro_f1"]:.3f}  ({report["num_examples"]} '
          f'phrases, {report["windows"]} windows); the same instruments\' '
          f'{report["notes_of_the_same_instruments"]} notes in '
          f'{report["note_split"]}: accuracy '
          + (f'{notes:.3f}' if notes is not None else 'n/a'))


def main() -> None:
  """Console entry point (nsynth-evaluate)."""
  from trainer import input_pipeline  # pylint: disable=g-import-not-at-top
  cli.run(_define_flags, _main, user_errors=(
      job_layout.JobDirError, manifest_lib.ManifestError,
      input_pipeline.DataError))


if __name__ == '__main__':
  main()
