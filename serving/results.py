"""Turning a signature's outputs into what people and scripts read."""

import dataclasses
import json
import re
from collections.abc import Sequence

import numpy as np

from nsynth_contracts import window_params
from serving import signatures


@dataclasses.dataclass(frozen=True)
class Window:
  """One window of a recording: when it starts and what it sounds like."""
  start_seconds: float
  family: str
  probability: float


@dataclasses.dataclass(frozen=True)
class Prediction:
  file: str
  family: str | None = None
  top: tuple[tuple[str, float], ...] = ()   # (family, probability), best first
  error: str | None = None
  seconds: float | None = None              # a recording's length
  timeline: tuple[Window, ...] = ()         # a recording's sounding windows


def printable(value) -> str:
  """`value` as text a terminal shows as text: every character that is not
  printable (ESC and its colour and cursor sequences, other controls,
  direction overrides, newlines) becomes '?'. Names and messages from a
  server pass through this before they are printed, as tables or JSON."""
  text = value.decode('utf-8', 'replace') if isinstance(value, bytes) else (
      str(value))
  return ''.join(c if c.isprintable() else '?' for c in text)


def recording_prediction(file: str, seconds: float, outputs: dict,
                         top_k: int) -> Prediction:
  """A long-audio signature's outputs (NumPy) as one Prediction."""
  names = [printable(n) for n in outputs[signatures.CLASSES]]
  family = printable(outputs[signatures.FAMILY])
  timeline = tuple(
      Window(float(start), names[int(np.argmax(row))], float(np.max(row)))
      for start, row in zip(outputs[signatures.WINDOW_START_SECONDS],
                            outputs[signatures.WINDOW_PROBABILITIES]))
  if not timeline:
    return Prediction(file, family=family, seconds=seconds)
  row = outputs[signatures.PROBABILITIES]
  order = np.argsort(-row)[:top_k]
  return Prediction(file, family=family,
                    top=tuple((names[i], float(row[i])) for i in order),
                    seconds=seconds, timeline=timeline)


def readable_error(message: str) -> str:
  """The part of a TensorFlow error a person needs: the signature's own words.

  The signatures refuse with 'assertion failed: [<our words>]', followed by
  the node's name ('[[{{node ...}}]]') on the lines after; that becomes
  '<our words>'. Other errors keep their first real line, without
  TensorFlow's '{{function_node ...}}' and '[Op:...]' wrapping.
  """
  found = re.search(r'assertion failed: \[(.*)\]\s*$', message, re.M)
  if found:
    return printable(found.group(1).strip())
  lines = [re.sub(r'\{\{[^}]*\}\}|\[Op:[^\]]*\]', '', line).strip()
           for line in message.splitlines()
           if not line.strip().startswith('[[')
           and 'Graph execution error' not in line
           and not line.startswith(('Detected at node', '<stack traces'))]
  lines = [line for line in lines if line]
  return printable(lines[0] if lines else message.strip())


def predictions_from_outputs(files: Sequence[str], probabilities: np.ndarray,
                             classes: np.ndarray, top_k: int
                             ) -> list[Prediction]:
  """Rows of the signature's `probabilities` and `classes` outputs; a row of
  zeros is a note with no sound (nsynth_contracts.windows)."""
  predictions = []
  for file, row, names in zip(files, probabilities, classes):
    if not np.any(row):
      predictions.append(Prediction(file=file, family=window_params.NO_SOUND))
      continue
    names = [printable(n) for n in names]
    order = np.argsort(-row)[:top_k]
    predictions.append(Prediction(
        file=file, family=names[order[0]],
        top=tuple((names[i], float(row[i])) for i in order)))
  return predictions


def to_json(predictions: Sequence[Prediction],
            timeline: bool = False) -> str:
  return json.dumps([{
      'file': p.file, 'family': p.family,
      'top': [{'family': f, 'probability': round(v, 6)} for f, v in p.top],
      **({'seconds': round(p.seconds, 3)} if p.seconds is not None else {}),
      **({'windows': len(p.timeline)} if p.seconds is not None else {}),
      **({'timeline': [{'start_seconds': w.start_seconds, 'family': w.family,
                        'probability': round(w.probability, 6)}
                       for w in p.timeline]} if timeline and p.timeline
         else {}),
      **({'error': p.error} if p.error else {}),
  } for p in predictions], indent=2)


def to_table(predictions: Sequence[Prediction],
             timeline: bool = False) -> str:
  files = [printable(p.file) for p in predictions]
  width = max([len('file')] + [len(f) for f in files])
  lines = [f'{"file":<{width}}  {"family":<10}  top probabilities']
  for file, p in zip(files, predictions):
    if p.error:
      lines.append(f'{file:<{width}}  {"ERROR":<10}  {p.error}')
      continue
    top = '  '.join(f'{f} {v:.3f}' for f, v in p.top)
    if p.seconds is not None:
      top += f'  ({p.seconds:.1f} s, {len(p.timeline)} sounding windows)'
    lines.append(f'{file:<{width}}  {p.family:<10}  {top}'.rstrip())
    if timeline:
      lines += [f'{"":<{width}}    {w.start_seconds:6.1f} s  {w.family:<10} '
                f'{w.probability:.3f}' for w in p.timeline]
  return '\n'.join(lines)
