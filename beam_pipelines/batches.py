"""Batches of featurised records: how notes travel through the costly stages.

The job moves notes in batches from decoding to the sinks: one element, one
feature call, one statistics update per batch instead of per note.
"""

import dataclasses
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Sequence

import numpy as np

from nsynth_contracts import examples_json
from nsynth_contracts.outcomes import Kind
from nsynth_contracts.outcomes import OutcomeKey


@dataclasses.dataclass(frozen=True)
class FeaturizedBatch:
  """Records with their features, one array for all of them.

  A row is a note as read (copy 0), one of its augmented copies (1..K), or,
  with `windows`, a window of a recording.
  """
  notes: tuple[examples_json.Note, ...]
  mfccs: np.ndarray           # float32 [rows, frames, coefficients]
  clips: np.ndarray | None    # float32 [rows, clip_samples], with keep_audio
  copies: tuple[int, ...] = ()   # per row; empty: every row is copy 0
  windows: bool = False          # rows are windows of --recordings
  # {representation key: float32 [rows, size]}, those the job computes
  representations: dict[str, np.ndarray] = dataclasses.field(
      default_factory=dict)
  # What the worker computed the representations in (precision.FLOAT32 or
  # BFLOAT16); None when the batch holds none.
  precision: str | None = None

  @property
  def split(self) -> str:
    """The split of every note in the batch (see `per_split`)."""
    (split,) = {note.split for note in self.notes}
    return split

  def copy_of(self, row: int) -> int:
    return self.copies[row] if self.copies else 0

  def row_outcomes(self) -> Iterator[OutcomeKey]:
    """What each row is, for the accounting: a note written, a window
    written, or an augmented copy written, to its split."""
    kind = Kind.WINDOW if self.windows else Kind.WRITTEN
    for i, note in enumerate(self.notes):
      yield OutcomeKey(Kind.AUGMENTED if self.copy_of(i) else kind,
                       note.split)

  def per_split(self) -> Iterable['FeaturizedBatch']:
    """One batch per split present: each split is written to its own shards."""
    rows = {}
    for i, note in enumerate(self.notes):
      rows.setdefault(note.split, []).append(i)
    if len(rows) == 1:
      yield self
      return
    for split_rows in rows.values():
      yield self.rows(split_rows)

  def rows(self, indices: Sequence[int]) -> 'FeaturizedBatch':
    """The batch of only these rows."""
    return FeaturizedBatch(
        tuple(self.notes[i] for i in indices), self.mfccs[list(indices)],
        None if self.clips is None else self.clips[list(indices)],
        tuple(self.copies[i] for i in indices) if self.copies else (),
        self.windows,
        {key: values[list(indices)]
         for key, values in self.representations.items()}, self.precision)
