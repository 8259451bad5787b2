r"""Evaluation report: metrics, per-family scores, confusion matrix, curves.

Usage:
  nsynth-evaluate --job_dir=jobs/demo --split=test [--split=valid]

Writes into `<job_dir>/eval/`: `<split>_metrics.json` (accuracy, loss,
per-family precision/recall/F1, the confusion matrix, and the split method,
stated honestly), `<split>_confusion.png`, `<split>_examples.png` (the MFCCs
of one note per family with what the model made of it), and `curves.png` from
the training history.
"""

# First: as a command, this quiets TensorFlow before anything imports it.
from nsynth_contracts import cli

# isort: split

import csv
import io
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from nsynth_contracts import manifest as manifest_lib
from trainer import job_layout

EVAL_DIR = job_layout.EVAL_DIR
HISTORY_CSV = job_layout.HISTORY_CSV


def classification_report(true_ids: np.ndarray, probabilities: np.ndarray,
                          families: Sequence[str]) -> dict:
  """Accuracy, loss and per-family scores from predictions.

  Args:
    true_ids: int [N] label ids.
    probabilities: float [N, classes].
    families: class names in label id order.
  """
  num_classes = len(families)
  predicted = probabilities.argmax(axis=1)
  confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
  np.add.at(confusion, (true_ids, predicted), 1)
  per_family = {}
  for i, family in enumerate(families):
    tp = confusion[i, i]
    predicted_as = confusion[:, i].sum()
    support = confusion[i, :].sum()
    precision = tp / predicted_as if predicted_as else 0.0
    recall = tp / support if support else 0.0
    f1 = (2 * precision * recall / (precision + recall)
          if precision + recall else 0.0)
    per_family[family] = {'precision': float(precision),
                          'recall': float(recall), 'f1': float(f1),
                          'support': int(support)}
  picked = probabilities[np.arange(len(true_ids)), true_ids]
  loss = float(-np.mean(np.log(np.clip(picked, 1e-7, 1.0))))
  # scikit-learn's macro average: over the classes that occur as truth or
  # as prediction (a family predicted but never true counts, with F1 0).
  occurring = [per_family[f]['f1'] for i, f in enumerate(families)
               if confusion[i, :].sum() or confusion[:, i].sum()]
  return {
      'num_examples': int(len(true_ids)),
      'accuracy': float((predicted == true_ids).mean()),
      'loss': loss,
      'macro_f1': float(np.mean(occurring)) if occurring else 0.0,
      'per_family': per_family,
      'confusion_matrix': {'labels': list(families),
                           'rows_true_columns_predicted': confusion.tolist()},
  }


def honest_split_statement(manifest: manifest_lib.Manifest, split: str,
                           train_split: str) -> str:
  method = manifest.split_method
  if split == train_split:
    return 'the training split: these notes were learned from'
  if method.get('instrument_disjoint'):
    return ('instrument-disjoint: no instrument of this split was seen in '
            'training, so this measures generalization to new instruments')
  shared = method.get('instruments_in_several_splits')
  return (f'NOT instrument-disjoint ({shared}'
          f' instruments appear in several splits, split method '
          f'{method.get("name")!r}): the same instruments were seen in '
          f'training, so this overstates accuracy on new instruments')


def save_figure(fig, path: str, dpi: int) -> None:
  """A matplotlib figure as PNG at `path` (local or gs://), then closed."""
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  buffer = io.BytesIO()
  fig.savefig(buffer, format='png', dpi=dpi)
  plt.close(fig)
  with tf.io.gfile.GFile(path, 'wb') as f:
    f.write(buffer.getvalue())


def plot_confusion(report: dict, title: str, path: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  names = report['confusion_matrix']['labels']
  counts = np.array(report['confusion_matrix']['rows_true_columns_predicted'])
  fractions = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
  fig, ax = plt.subplots(figsize=(7.5, 6.5))
  image = ax.imshow(fractions, cmap='Blues', vmin=0, vmax=1)
  ax.set_xticks(range(len(names)), names, rotation=45, ha='right')
  ax.set_yticks(range(len(names)), names)
  for i in range(len(names)):
    for j in range(len(names)):
      if counts[i, j]:
        ax.text(j, i, str(counts[i, j]), ha='center', va='center', fontsize=8,
                color='white' if fractions[i, j] > 0.5 else 'black')
  ax.set_xlabel('predicted family')
  ax.set_ylabel('true family')
  ax.set_title(title, fontsize=10)
  fig.colorbar(image, ax=ax, label='fraction of the true family')
  fig.tight_layout()
  save_figure(fig, path, dpi=110)


def plot_examples(examples: dict[int, np.ndarray], true_ids: np.ndarray,
                  probabilities: np.ndarray, first_index: dict[int, int],
                  families, title: str, path: str) -> None:
  """One note per family: its MFCCs over time, true vs predicted family.

  Args:
    examples: label id -> float [frames, coefficients] of its first note.
    true_ids, probabilities: the split's labels and predictions.
    first_index: label id -> row of that note in true_ids/probabilities.
    families: class names in label id order.
    title: figure title.
    path: PNG to write.
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  ids = sorted(examples)
  columns = 3
  rows = -(-len(ids) // columns)
  fig, axes = plt.subplots(rows, columns, figsize=(12, 2.6 * rows),
                           squeeze=False)
  for ax in axes.flat:
    ax.axis('off')
  for ax, label in zip(axes.flat, ids):
    row = first_index[label]
    predicted = int(probabilities[row].argmax())
    mfcc = examples[label]                                # [frames, coeffs]
    # c0 (loudness) dwarfs the rest; show c1.. so timbre is visible.
    ax.imshow(mfcc[:, 1:].T, origin='lower', aspect='auto', cmap='magma')
    ax.axis('on')
    ax.set_yticks([0, mfcc.shape[1] - 2], ['c1', f'c{mfcc.shape[1] - 1}'])
    ax.set_xlabel('frame (32 ms hop)', fontsize=8)
    verdict = 'right' if predicted == label else 'wrong'
    ax.set_title(f'{families[label]} -> {families[predicted]} '
                 f'({probabilities[row, predicted]:.2f}, {verdict})',
                 fontsize=9, color='black' if predicted == label else 'red')
  fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  save_figure(fig, path, dpi=100)


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


def plot_curves(history: list[dict], title: str, path: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  epochs = [int(h['epoch']) + 1 for h in history]
  fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 4))
  for key, style in (('loss', '-'), ('val_loss', '--')):
    if key in history[0]:
      loss_ax.plot(epochs, [h[key] for h in history], style, label=key)
  for key, style in (('accuracy', '-'), ('val_accuracy', '--')):
    if key in history[0]:
      acc_ax.plot(epochs, [h[key] for h in history], style, label=key)
  loss_ax.set(xlabel='epoch', ylabel='loss', title='loss')
  acc_ax.set(xlabel='epoch', ylabel='accuracy', title='accuracy', ylim=(0, 1))
  for ax in (loss_ax, acc_ax):
    ax.legend()
    ax.grid(alpha=0.3)
  fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  save_figure(fig, path, dpi=110)


def write_report(job_dir: str, split: str, true_ids: np.ndarray,
                 probabilities: np.ndarray, manifest: manifest_lib.Manifest,
                 model_name: str, train_split: str,
                 examples: dict[int, np.ndarray] | None = None) -> dict:
  """Writes `<split>_metrics.json`, `<split>_confusion.png` and, given one
  MFCC per family, `<split>_examples.png`; returns the metrics."""
  out_dir = job_layout.path(job_dir, EVAL_DIR)
  tf.io.gfile.makedirs(out_dir)
  report = classification_report(true_ids, probabilities,
                                  manifest.vocabulary.families)
  report.update({
      'split': split,
      'model': model_name,
      'split_method': manifest.split_method.get('name'),
      'split_statement': honest_split_statement(manifest, split, train_split),
  })
  job_layout.write_json(job_layout.path(out_dir, f'{split}_metrics.json'),
                        report)
  plot_confusion(report, f'{model_name} on {split}: accuracy '
                 f'{report["accuracy"]:.3f} ({report["num_examples"]} notes)\n'
                 f'{manifest.split_method.get("name")} split, '
                 f'instrument-disjoint: '
                 f'{bool(manifest.split_method.get("instrument_disjoint"))}',
                 job_layout.path(out_dir, f'{split}_confusion.png'))
  if examples:
    first_index = {label: int(np.flatnonzero(true_ids == label)[0])
                   for label in examples}
    plot_examples(examples, true_ids, probabilities, first_index,
                  manifest.vocabulary.families,
                  f'{model_name} on {split}: the first note of each family',
                  job_layout.path(out_dir, f'{split}_examples.png'))
  history = read_history(job_dir)
  if history:
    plot_curves(history, f'{model_name} training curves',
                job_layout.path(out_dir, 'curves.png'))
  return report


def evaluate_split(model, data_dir: str, manifest: manifest_lib.Manifest,
                   split: str, batch_size: int = 256
                   ) -> tuple[np.ndarray, np.ndarray, dict[int, np.ndarray]]:
  """One split's true label ids [N], probabilities [N, classes], and the
  MFCCs [frames, coefficients] of the first note of each label id.

  Raises:
    input_pipeline.DataError: a record is damaged or its label is outside
      the vocabulary, naming the file.
  """
  from trainer import input_pipeline  # pylint: disable=g-import-not-at-top
  files = input_pipeline.split_files(data_dir, manifest, split)
  dataset = input_pipeline.make_dataset(files, manifest, batch_size)
  true_ids, probabilities, examples = [], [], {}
  try:
    for mfcc, one_hot in dataset:
      probabilities.append(model(mfcc, training=False).numpy())
      ids = one_hot.numpy().argmax(axis=1)
      true_ids.append(ids)
      for row, label in enumerate(ids):
        examples.setdefault(int(label), mfcc[row].numpy())
  except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as e:
    raise input_pipeline.data_error(e, files, manifest) from None
  return np.concatenate(true_ids), np.concatenate(probabilities), examples


def evaluate_job(job_dir: str, splits: Sequence[str],
                 data_dir: str | None = None) -> dict[str, dict]:
  """Loads a job's best model and writes the report for each split."""
  import keras  # pylint: disable=g-import-not-at-top
  config = job_layout.read_job_config(job_dir)
  data_dir = data_dir or config['data_dir']
  manifest = manifest_lib.read(data_dir)
  best = job_layout.best_model_path(job_dir)
  if not tf.io.gfile.exists(best):
    raise job_layout.JobDirError(f'{best} does not exist: the run in '
                                 f'{job_dir} has not finished an epoch')
  model = keras.models.load_model(best)
  reports = {}
  for split in splits:
    true_ids, probabilities, examples = evaluate_split(model, data_dir,
                                                       manifest, split)
    reports[split] = write_report(job_dir, split, true_ids, probabilities,
                                  manifest, config['model'],
                                  config['train_split'], examples)
  return reports


def print_headline(reports: dict[str, dict], job_dir: str) -> None:
  for split, report in reports.items():
    print(f'{split:>6}: accuracy {report["accuracy"]:.3f}  loss '
          f'{report["loss"]:.3f}  macro-F1 {report["macro_f1"]:.3f}  '
          f'({report["num_examples"]} notes; {report["split_statement"]})')
  print(f'Report, confusion matrices and curves: '
        f'{job_layout.path(job_dir, EVAL_DIR)}/')


def _define_flags() -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string('job_dir', None, 'A trainer --job_dir.', required=True)
  flags.DEFINE_multi_string('split', ['test'], 'Splits to evaluate.')
  flags.DEFINE_string('data_dir', None,
                      'TFRecords to evaluate on (default: the job\'s own).')


def _main(argv: list[str]) -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  if len(argv) > 1:
    raise cli.UserError(f'unexpected arguments {argv[1:]}')
  reports = evaluate_job(flags.FLAGS.job_dir, flags.FLAGS.split,
                         flags.FLAGS.data_dir)
  print_headline(reports, flags.FLAGS.job_dir)


def main() -> None:
  """Console entry point (nsynth-evaluate)."""
  from trainer import input_pipeline  # pylint: disable=g-import-not-at-top
  cli.run(_define_flags, _main, user_errors=(
      job_layout.JobDirError, manifest_lib.ManifestError,
      input_pipeline.DataError))


if __name__ == '__main__':
  main()
