"""The report's pictures, as PNG files local or on cloud storage.

Drawn on matplotlib's Figure objects, not pyplot: no backend to choose and
no global figure state to close, so drawing works the same in any process.
"""

import io

import numpy as np
import tensorflow as tf
from matplotlib.figure import Figure


def save_figure(fig: Figure, path: str, dpi: int) -> None:
  """A matplotlib figure as PNG at `path` (local or gs://)."""
  buffer = io.BytesIO()
  fig.savefig(buffer, format='png', dpi=dpi)
  with tf.io.gfile.GFile(path, 'wb') as f:
    f.write(buffer.getvalue())


def plot_confusion(report: dict, title: str, path: str) -> None:
  names = report['confusion_matrix']['labels']
  counts = np.array(report['confusion_matrix']['rows_true_columns_predicted'])
  fractions = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
  fig = Figure(figsize=(7.5, 6.5))
  ax = fig.subplots()
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
  ids = sorted(examples)
  columns = 3
  rows = -(-len(ids) // columns)
  fig = Figure(figsize=(12, 2.6 * rows))
  axes = fig.subplots(rows, columns, squeeze=False)
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


def plot_curves(history: list[dict], title: str, path: str) -> None:
  epochs = [int(h['epoch']) + 1 for h in history]
  fig = Figure(figsize=(11, 4))
  loss_ax, acc_ax = fig.subplots(1, 2)
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


def plot_slices(slices: dict[str, dict[str, dict]], title: str,
                path: str) -> None:
  """One bar chart per slicing (source, pitch range): accuracy per slice,
  with the number of notes on each bar."""
  fig = Figure(figsize=(5.5 * len(slices), 4.2))
  axes = fig.subplots(1, len(slices), squeeze=False, gridspec_kw={
      'width_ratios': [max(2, len(v)) for v in slices.values()]})
  for ax, (slicing, values) in zip(axes[0], slices.items()):
    names = list(values)
    accuracy = [values[n]['accuracy'] for n in names]
    bars = ax.bar(range(len(names)), accuracy, color='tab:blue')
    for bar, name in zip(bars, names):
      ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height() + 0.02,
              f'n={values[name]["num_examples"]}', ha='center', fontsize=8)
    ax.set_xticks(range(len(names)), names, rotation=30, ha='right',
                  fontsize=8)
    ax.set(ylim=(0, 1.1), ylabel='accuracy',
           title=f'by {slicing.replace("_", " ")}')
    ax.grid(axis='y', alpha=0.3)
  fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  save_figure(fig, path, dpi=100)
