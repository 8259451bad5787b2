"""What a TF Serving reply must be before anything of it is used.

A reply answers the request it came for (one row per file, or one
recording as a whole), with finite probabilities in [0, 1] and string class
names, and every name is made printable; TF Serving's REST error body is
read in its own words. Anything else is a ServerError in one line.
"""

import json

import numpy as np

from serving import results
from serving import signatures


class ServerError(Exception):
  """TF Serving refused the request or answered nonsense; the message says
  which, in one line."""


def checked_outputs(outputs, num_files: int | None, where: str,
                    max_windows: int = 0) -> dict[str, np.ndarray]:
  """The reply's outputs, if they answer `num_files` files (None: one
  recording, answered as a whole and per window, in at most `max_windows`
  windows), with every string made printable.

  Raises:
    ServerError: outputs missing, or not one row per file; probabilities
      that are not numbers in [0, 1]; window outputs of another shape, type
      or number than the recording's (naming the output).
  """
  if not isinstance(outputs, dict):
    raise ServerError(f'the reply from {where} holds no outputs object')
  missing = [k for k in (signatures.PROBABILITIES, signatures.CLASSES)
             if k not in outputs]
  if missing:
    raise ServerError(f'the reply from {where} lacks the outputs {missing} '
                      f'(it has {[results.printable(k) for k in outputs][:8]})')
  if num_files is None:
    missing = [k for k in (signatures.FAMILY, signatures.WINDOW_PROBABILITIES,
                           signatures.WINDOW_START_SECONDS) if k not in outputs]
    if missing:
      raise ServerError(f'the reply from {where} lacks the outputs {missing} '
                        f'a recording is answered with')
  try:
    arrays = {key: np.asarray(value) for key, value in outputs.items()}
  except (ValueError, TypeError):
    raise ServerError(f'the reply from {where} holds outputs that are not '
                      f'rectangular arrays') from None
  probabilities = arrays[signatures.PROBABILITIES]
  classes = arrays[signatures.CLASSES]
  _check_probabilities(probabilities, signatures.PROBABILITIES, where)
  # Notes: [files, classes] each; a recording: [classes] each.
  rank = 1 if num_files is None else 2
  if probabilities.ndim != rank or classes.ndim != rank:
    raise ServerError(f'the reply from {where} has probabilities of rank '
                      f'{probabilities.ndim} and classes of rank '
                      f'{classes.ndim}; {rank} was expected')
  if num_files is not None and probabilities.shape[0] != num_files:
    raise ServerError(f'the reply from {where} has {probabilities.shape[0]} '
                      f'rows of {signatures.PROBABILITIES!r} for {num_files} '
                      f'file(s)')
  if probabilities.shape != classes.shape:
    raise ServerError(f'the reply from {where} names {classes.shape[-1]} '
                      f'classes for {probabilities.shape[-1]} probabilities')
  if classes.dtype.kind not in 'USO' or not all(
      isinstance(c, (str, bytes)) for c in classes.ravel().tolist()):
    raise ServerError(f'the reply from {where} has class names that are not '
                      f'strings')
  if num_files is None:
    _check_windows(arrays, classes.shape[-1], max_windows, where)
  for key in (signatures.CLASSES, signatures.FAMILY):
    if key in arrays and arrays[key].dtype.kind in 'USO':
      arrays[key] = np.vectorize(results.printable, otypes=[object])(
          arrays[key]) if arrays[key].size else arrays[key]
  return arrays


# How far a distribution's sum may be from 1: float32 softmax and the
# digits of JSON numbers stay within 1e-5.
_SUM_TOLERANCE = 1e-3


def _check_probabilities(values: np.ndarray, key: str, where: str) -> None:
  """Numbers in [0, 1], each distribution (the last axis) summing to 1, or
  all zero: a clip with no sound."""
  if values.dtype.kind not in 'fi' or not np.all(np.isfinite(values)) or (
      values.min(initial=0) < 0 or values.max(initial=0) > 1 + 1e-6):
    raise ServerError(f'the reply from {where} holds {key!r} that are not '
                      f'numbers in [0, 1]')
  if values.ndim == 0 or values.shape[-1] == 0:
    return
  sums = values.sum(axis=-1, dtype=np.float64)
  whole = (np.abs(sums - 1.0) <= _SUM_TOLERANCE) | ~values.any(axis=-1)
  if not whole.all():
    bad = float(sums.ravel()[int(np.argmin(whole.ravel()))])
    raise ServerError(f'the reply from {where} holds {key!r} that do not sum '
                      f'to 1 (one sums to {bad:.4g})')


def _check_windows(arrays: dict, num_classes: int, max_windows: int,
                   where: str) -> None:
  """A recording's window outputs: a row of probabilities per window, one
  per class, and each window's start, in order, no more windows than the
  audio sent can be cut into."""
  rows = arrays[signatures.WINDOW_PROBABILITIES]
  starts = arrays[signatures.WINDOW_START_SECONDS]
  if rows.size == 0 and starts.size == 0:  # No window sounds: JSON's [].
    rows = arrays[signatures.WINDOW_PROBABILITIES] = np.zeros(
        (0, num_classes), np.float32)
    starts = arrays[signatures.WINDOW_START_SECONDS] = np.zeros(0, np.float32)
  family = arrays[signatures.FAMILY]
  if rows.ndim != 2 or rows.shape[1] != num_classes:
    raise ServerError(
        f'the reply from {where} has {signatures.WINDOW_PROBABILITIES!r} of '
        f'shape {list(rows.shape)}; [windows, {num_classes}] was expected')
  _check_probabilities(rows, signatures.WINDOW_PROBABILITIES, where)
  if rows.shape[0] > max_windows:
    raise ServerError(
        f'the reply from {where} has {rows.shape[0]} windows in '
        f'{signatures.WINDOW_PROBABILITIES!r}; the recording sent has at most '
        f'{max_windows}')
  if starts.shape != rows.shape[:1] or starts.dtype.kind not in 'fi' or not (
      np.all(np.isfinite(starts))) or np.any(starts < 0) or np.any(
          np.diff(starts) <= 0):
    raise ServerError(
        f'the reply from {where} has {signatures.WINDOW_START_SECONDS!r} that '
        f'are not {rows.shape[0]} increasing times in seconds, one per window')
  if family.ndim != 0 or family.dtype.kind not in 'USO' or not isinstance(
      family.item(), (str, bytes)):
    raise ServerError(f'the reply from {where} has a {signatures.FAMILY!r} '
                      f'that is not one string')


def error_detail(body: bytes) -> str:
  """TF Serving's REST error body is {"error": "..."}; anything else is
  shown as it came, briefly."""
  text = body.decode('utf-8', 'replace')
  try:
    parsed = json.loads(text)
  except (ValueError, RecursionError):
    parsed = text
  if isinstance(parsed, dict) and isinstance(parsed.get('error'), str):
    return results.readable_error(parsed['error'])
  detail = parsed if isinstance(parsed, str) else json.dumps(parsed)
  detail = results.printable(' '.join(detail.split()))
  return detail[:200] + ('...' if len(detail) > 200 else '')
