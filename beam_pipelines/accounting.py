"""Counting what happened to every note: Beam counters and the manifest's
accounting, from one place.

Each stage yields its outcomes as values: FeaturizedBatches (notes, windows
and copies written), Filtered, DeadLetter and RecordingWindowed.
`outcome_counts` names each with an `nsynth_contracts.outcomes.OutcomeKey`,
and `CountOutcomes` both increments the key's Beam counter and sums the keys
into the one dict `Accounting.from_counts` reads.
"""

import dataclasses
from typing import Any

import apache_beam as beam

from beam_pipelines.batches import FeaturizedBatch
from nsynth_contracts import examples_json
from nsynth_contracts import outcomes
from nsynth_contracts.outcomes import Kind
from nsynth_contracts.outcomes import OutcomeKey

# The tagged outputs of the job's stages: what goes on, and the outcomes
# that leave the pipeline there.
NOTES = 'notes'
FILTERED = 'filtered'
DEAD_LETTERS = 'dead_letters'
RECORDINGS_WINDOWED = 'recordings_windowed'


@dataclasses.dataclass(frozen=True)
class Filtered:
  """A note (or a recording) a filter left out."""
  note: examples_json.Note
  filter_name: str   # 'source', 'family', 'cap' or 'holdout'
  what: str = 'note'   # or outcomes.RECORDING

  @property
  def outcome(self) -> OutcomeKey:
    return OutcomeKey(Kind.RECORDING_FILTERED if self.what == outcomes.RECORDING
                      else Kind.FILTERED, self.filter_name)


@dataclasses.dataclass(frozen=True)
class RecordingWindowed:
  """A recording that was decoded and cut: how many windows were silent."""
  split: str
  silent_windows: int


def count(counter: str, value: int = 1) -> None:
  """Adds to one of the job's Beam counters (namespace 'nsynth')."""
  beam.metrics.Metrics.counter(outcomes.METRICS_NAMESPACE, counter).inc(value)


def outcome_counts(outcome: Any) -> list[tuple[OutcomeKey, int]]:
  """[(key, count)] of one outcome value (a batch counts each row)."""
  if isinstance(outcome, (Filtered, outcomes.DeadLetter)):
    return [(outcome.outcome, 1)]
  if isinstance(outcome, RecordingWindowed):
    return [(OutcomeKey(Kind.RECORDING_WINDOWED, outcome.split), 1),
            (OutcomeKey(Kind.SILENT_WINDOWS), outcome.silent_windows)]
  if isinstance(outcome, FeaturizedBatch):
    totals = {}
    for key in outcome.row_outcomes():
      totals[key] = totals.get(key, 0) + 1
    return list(totals.items())
  raise TypeError(f'Not an outcome: {outcome!r}')


def _counted(outcome: Any) -> list[tuple[tuple[str, str], int]]:
  counts = outcome_counts(outcome)
  for key, n in counts:
    count(key.counter_name, n)
  # Keyed by plain tuples: Beam encodes them deterministically.
  return [(key.as_tuple(), n) for key, n in counts]


def _to_counts(summed: dict) -> dict[OutcomeKey, int]:
  return {OutcomeKey.from_tuple(key): n for key, n in summed.items()}


class CountOutcomes(beam.PTransform):
  """{name: PCollection of outcomes} -> one dict {OutcomeKey: count}.

  Each outcome is reduced to its counts inside its own stage, before the
  Flatten: flattening the written batches themselves would ship every MFCC
  array between workers just to be counted.
  """

  def expand(self, outcomes_by_name):
    # A dict, because Beam flattens a list piped into a composite itself.
    counts = [pcoll | f'Count[{name}]' >> beam.FlatMap(_counted)
              for name, pcoll in sorted(outcomes_by_name.items())]
    return (counts
            | 'Flatten' >> beam.Flatten()
            | 'Sum' >> beam.CombinePerKey(sum)
            | 'ToDict' >> beam.combiners.ToDict()
            | 'Keys' >> beam.Map(_to_counts))
