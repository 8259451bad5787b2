"""The report's numbers: metrics as scikit-learn computes them, per slice."""

from collections.abc import Sequence

import numpy as np
from sklearn import metrics as sklearn_metrics

from nsynth_contracts import manifest as manifest_lib


def classification_report(true_ids: np.ndarray, probabilities: np.ndarray,
                          families: Sequence[str]) -> dict:
  """Accuracy, loss and per-family scores from predictions.

  Args:
    true_ids: int [N] label ids.
    probabilities: float [N, classes], each row a distribution.
    families: class names in label id order.

  Returns:
    scikit-learn's figures: accuracy, log loss, macro-F1 over the families
    that occur as truth or as prediction (one predicted but never true
    counts, with F1 0), per-family precision, recall, F1 and support (0
    where undefined), and the confusion matrix.
  """
  labels = list(range(len(families)))
  predicted = probabilities.argmax(axis=1)
  precision, recall, f1, support = (
      sklearn_metrics.precision_recall_fscore_support(
          true_ids, predicted, labels=labels, zero_division=0))
  per_family = {family: {'precision': float(precision[i]),
                         'recall': float(recall[i]), 'f1': float(f1[i]),
                         'support': int(support[i])}
                for i, family in enumerate(families)}
  confusion = sklearn_metrics.confusion_matrix(true_ids, predicted,
                                               labels=labels)
  return {
      'num_examples': int(len(true_ids)),
      'accuracy': float(sklearn_metrics.accuracy_score(true_ids, predicted)),
      'loss': float(sklearn_metrics.log_loss(true_ids, probabilities,
                                             labels=labels)),
      'macro_f1': float(sklearn_metrics.f1_score(
          true_ids, predicted, average='macro', zero_division=0)),
      'per_family': per_family,
      'confusion_matrix': {'labels': list(families),
                           'rows_true_columns_predicted': confusion.tolist()},
  }


def honest_split_statement(manifest: manifest_lib.Manifest, split: str,
                           train_split: str) -> str:
  method = manifest.split_method
  if split == train_split:
    return 'the training split: these notes were learned from'
  if method.instrument_disjoint:
    return ('instrument-disjoint: no instrument of this split was seen in '
            'training, so this measures generalization to new instruments')
  shared = method.instruments_in_several_splits
  return (f'NOT instrument-disjoint ({shared}'
          f' instruments appear in several splits, split method '
          f'{method.name!r}): the same instruments were seen in '
          f'training, so this overstates accuracy on new instruments')


# Pitch ranges for slicing: about an octave each, over the MIDI notes NSynth
# holds (21-108); the first and last are wider.
PITCH_RANGE_EDGES = (0, 36, 48, 60, 72, 84, 96, 128)
_NOTE_NAMES = ('C', 'C#', 'D', 'D#', 'E', 'F', 'F#', 'G', 'G#', 'A', 'A#', 'B')


def _note_name(midi: int) -> str:
  return f'{_NOTE_NAMES[midi % 12]}{midi // 12 - 1}'


def pitch_ranges(pitches: np.ndarray) -> np.ndarray:
  """The name of each MIDI pitch's range, e.g. 'C4-B4 (60-71)'."""
  names = []
  for low, high in zip(PITCH_RANGE_EDGES[:-1], PITCH_RANGE_EDGES[1:]):
    names.append(f'{_note_name(low)}-{_note_name(high - 1)} ({low}-{high - 1})')
  index = np.searchsorted(PITCH_RANGE_EDGES, np.asarray(pitches),
                          side='right') - 1
  return np.array(names, dtype=object)[np.clip(index, 0, len(names) - 1)]


def sliced_accuracy(true_ids: np.ndarray, predicted: np.ndarray,
                    slices: np.ndarray) -> dict[str, dict]:
  """{slice: {accuracy, num_examples}}, in the slices' sorted order (for
  pitch ranges, low to high)."""
  result = {}
  for name in sorted(set(slices.tolist()), key=_slice_order):
    rows = slices == name
    result[str(name)] = {
        'accuracy': float((true_ids[rows] == predicted[rows]).mean()),
        'num_examples': int(rows.sum())}
  return result


def _slice_order(name: str):
  found = name.rsplit('(', 1)
  if len(found) == 2 and found[1].split('-')[0].isdigit():
    return (0, int(found[1].split('-')[0]), name)
  return (1, 0, name)
