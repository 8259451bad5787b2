"""Turning a signature's outputs into what people and scripts read."""

import dataclasses
import json
import re
from collections.abc import Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class Prediction:
  file: str
  family: str | None = None
  top: tuple[tuple[str, float], ...] = ()   # (family, probability), best first
  error: str | None = None


def readable_error(message: str) -> str:
  """The part of a TensorFlow error a person needs: the signature's own words.

  'Graph execution error: ... assertion failed: [not a WAV file ...] ...'
  becomes 'not a WAV file ...'; other errors keep their first real line.
  """
  # The signatures' own checks (CheckNumerics): "<ours> : Tensor had NaN".
  found = re.search(r'^\s*(.+?) : Tensor had (?:NaN|Inf)', message, re.M)
  if found:
    return found.group(1).strip()
  found = re.search(r'assertion failed: ((?:\[[^\]]*\] ?)+)', message)
  if found:  # The message, then the values it shows: '[says] [1e+19]'.
    return ' '.join(re.findall(r'\[([^\]]*)\]', found.group(1)))
  lines = [line.strip() for line in message.splitlines()
           if line.strip() and not line.strip().startswith('[[')
           and 'Graph execution error' not in line
           and not line.startswith(('Detected at node', '<stack traces'))]
  return lines[0] if lines else message.strip()


def predictions_from_outputs(files: Sequence[str], probabilities: np.ndarray,
                             classes: np.ndarray, top_k: int
                             ) -> list[Prediction]:
  """Rows of the signature's `probabilities` and `classes` outputs."""
  predictions = []
  for file, row, names in zip(files, probabilities, classes):
    names = [n.decode() if isinstance(n, bytes) else n for n in names]
    order = np.argsort(-row)[:top_k]
    predictions.append(Prediction(
        file=file, family=names[order[0]],
        top=tuple((names[i], float(row[i])) for i in order)))
  return predictions


def to_json(predictions: Sequence[Prediction]) -> str:
  return json.dumps([{
      'file': p.file, 'family': p.family,
      'top': [{'family': f, 'probability': round(v, 6)} for f, v in p.top],
      **({'error': p.error} if p.error else {}),
  } for p in predictions], indent=2)


def to_table(predictions: Sequence[Prediction]) -> str:
  width = max([len('file')] + [len(p.file) for p in predictions])
  lines = [f'{"file":<{width}}  {"family":<10}  top probabilities']
  for p in predictions:
    if p.error:
      lines.append(f'{p.file:<{width}}  {"ERROR":<10}  {p.error}')
    else:
      top = '  '.join(f'{f} {v:.3f}' for f, v in p.top)
      lines.append(f'{p.file:<{width}}  {p.family:<10}  {top}')
  return '\n'.join(lines)
