"""The report's numbers: metrics as scikit-learn defines them, per slice.

Pure NumPy, so that a test can compare every figure with scikit-learn's.
"""

from collections.abc import Sequence

import numpy as np

from nsynth_contracts import manifest as manifest_lib


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
