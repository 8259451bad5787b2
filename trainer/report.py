"""The evaluation report of a trained job: metrics, pictures, TensorBoard.

For each split, `<job_dir>/eval/<split>_metrics.json` (accuracy, loss,
macro-F1 and per-family scores as scikit-learn computes them, the confusion
matrix, accuracy sliced by source and by pitch range, and the split method,
stated honestly), `<split>_confusion.png`, `<split>_slices.png`,
`<split>_examples.png` (the MFCCs of one note per family with what the model
made of it), and `curves.png` from the training history; the confusion
matrices, headline figures and hyperparameters also go to TensorBoard
(`<job_dir>/logs/report`). With phrases, `phrases_<dir>_metrics.json` and
`..._confusion.png`. trainer.evaluate is its command; trainer.train writes
it at the end of a run.
"""

import dataclasses
import posixpath
from collections.abc import Callable
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
from tensorboard.plugins.hparams import api as hparams_api

from nsynth_contracts import clip_features
from nsynth_contracts import dataset_versions
from nsynth_contracts import manifest as manifest_lib
from nsynth_contracts import schema
from nsynth_contracts import window_params
from trainer import data_checks
from trainer import input_pipeline
from trainer import job_layout
from trainer import layers
from trainer import metrics
from trainer import models
from trainer import phrases
from trainer import report_plots

EVAL_DIR = job_layout.EVAL_DIR


class ReportError(ValueError):
  """The report cannot be made as asked; the message says why."""


@dataclasses.dataclass(frozen=True)
class SplitPredictions:
  """What a model said about every note of one split."""
  true_ids: np.ndarray                # int [N]
  probabilities: np.ndarray           # float [N, classes]
  sources: np.ndarray                 # str [N]
  pitches: np.ndarray                 # int [N]
  examples: dict[int, np.ndarray]     # label id -> MFCC of its first note
  instruments: np.ndarray             # str [N]


def _split_report(split: str, predictions: SplitPredictions,
                  manifest: manifest_lib.Manifest, model_name: str,
                  train_split: str) -> dict:
  p = predictions
  report = metrics.classification_report(p.true_ids, p.probabilities,
                                         manifest.vocabulary.families)
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
  return report


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
  report = _split_report(split, predictions, manifest, model_name,
                         train_split)
  job_layout.write_json(job_layout.path(out_dir, f'{split}_metrics.json'),
                        report)
  p = predictions
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
        p.examples, p.true_ids, p.probabilities, first_index,
        manifest.vocabulary.families,
        f'{model_name} on {split}: the first note of each family',
        job_layout.path(out_dir, f'{split}_examples.png'))
  history = job_layout.read_history(job_dir)
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
  files = input_pipeline.split_files(data_dir, manifest, split)
  dataset = input_pipeline.make_dataset(files, manifest, batch_size,
                                        with_metadata=True,
                                        features=layers.input_names(model))
  true_ids, probabilities, sources, pitches, examples = [], [], [], [], {}
  instruments = []
  try:
    for inputs, one_hot, metadata in dataset:
      probabilities.append(model(inputs, training=False).numpy())
      mfcc = metadata[schema.MFCC]
      ids = one_hot.numpy().argmax(axis=1)
      true_ids.append(ids)
      sources.append(metadata[schema.SOURCE].numpy().astype(str))
      pitches.append(metadata[schema.PITCH].numpy())
      instruments.append(metadata[schema.INSTRUMENT].numpy().astype(str))
      for row, label in enumerate(ids):
        examples.setdefault(int(label), mfcc[row].numpy())
  except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as e:
    raise data_checks.data_error(e, files, manifest) from None
  return SplitPredictions(np.concatenate(true_ids),
                          np.concatenate(probabilities),
                          np.concatenate(sources), np.concatenate(pitches),
                          examples, np.concatenate(instruments))


def write_tensorboard(job_dir: str, config: dict,
                      reports: dict[str, dict]) -> None:
  """The report beside the training curves: each split's confusion matrix
  as an image, its headline figures, and the run's hyperparameters (the
  HPARAMS tab) under `logs/report`."""
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


def _best_model(job_dir: str):
  best = job_layout.best_model_path(job_dir)
  if not tf.io.gfile.exists(best):
    raise job_layout.JobDirError(f'{best} does not exist: the run in '
                                 f'{job_dir} has not finished an epoch')
  return models.load(best)


def _silent(_: str) -> None:
  pass


def evaluate_job(job_dir: str, splits: Sequence[str],
                 data_dir: str | None = None,
                 say: Callable[[str], None] = _silent) -> dict[str, dict]:
  """Loads a job's best model and writes the report for each split.

  Args:
    say: told what is being done, a line at a time.
  """
  config = job_layout.read_job_config(job_dir)
  data_dir = dataset_versions.resolve_data_dir(
      data_dir or config['data_dir'])
  manifest = manifest_lib.read(data_dir)
  model = _best_model(job_dir)
  reports = {}
  for split in splits:
    say(f'Evaluating {split}: {manifest.splits[split].num_examples} records'
        if split in manifest.splits else f'Evaluating {split}')
    predictions = evaluate_split(model, data_dir, manifest, split)
    reports[split] = write_report(job_dir, split, predictions, manifest,
                                  config['model'], config['train_split'])
  write_tensorboard(job_dir, config, reports)
  return reports


def evaluate_phrases(job_dir: str, phrases_dir: str, note_split: str = 'test',
                     data_dir: str | None = None,
                     say: Callable[[str], None] = _silent) -> dict:
  """Phrase-level accuracy, macro-F1 and confusion of the job's best model on
  a directory of labelled recordings, beside the note-level accuracy of the
  same instruments' notes in `note_split`. Writes
  `eval/phrases_<dir name>_metrics.json` and `..._confusion.png`.

  The phrases are cut into the windows of window_params.DEFAULT_WINDOWS,
  those every export of the job is made with (serving.signatures), and
  featurised with the job's own manifest's parameters.

  Args:
    say: told what is being done, a line at a time.

  Raises:
    ReportError: the directory holds no phrase the model can be judged on.
  """
  config = job_layout.read_job_config(job_dir)
  data_dir = dataset_versions.resolve_data_dir(
      data_dir or config['data_dir'])
  manifest = manifest_lib.read(data_dir)
  model = _best_model(job_dir)
  families = manifest.vocabulary.families
  say(f'Evaluating the recordings of {phrases_dir}, window by window')
  predicted = phrases.predict_phrases(
      model, phrases_dir, manifest.vocabulary, manifest.feature_params,
      window_params.DEFAULT_WINDOWS,
      clip_features.ClipFeatures.for_inputs(
          layers.input_names(model), manifest))
  if not predicted:
    raise ReportError(f'{phrases_dir} holds no sounding recording of a '
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


def headline(reports: dict[str, dict], job_dir: str) -> str:
  """Each split's figures in a line, and where the report is."""
  lines = []
  for split, report in reports.items():
    libraries = ', '.join(report.get('libraries') or {}) or 'no library named'
    lines.append(
        f'{split:>6}: accuracy {report["accuracy"]:.3f}  loss '
        f'{report["loss"]:.3f}  macro-F1 {report["macro_f1"]:.3f}  '
        f'({report["num_examples"]} records of {report["instruments"]} '
        f'instruments from {libraries}; {report["split_statement"]})')
  lines.append(f'Report, confusion matrices and curves: '
               f'{job_layout.path(job_dir, EVAL_DIR)}/')
  return '\n'.join(lines)
