"""Every outcome of the Beam job, named once: counter and manifest field.

Each note read from an examples.json ends in exactly one outcome: written
(to a split), filtered (by a named filter) or dead-lettered (with a kind).
Apart from the notes, the job counts the augmented copies it writes, and for
--recordings each recording (windowed, filtered or dead-lettered), the
windows it writes and the silent windows it skips.

An outcome is an `OutcomeKey`: a `Kind` and a detail (the split, the filter
or the dead-letter kind). The Beam job counts keys, its counters are named
by `OutcomeKey.counter_name`, and `Accounting.from_counts` turns the counts
into the manifest's `accounting`, whose `read` the launcher checks against
the notes it read.
"""

import dataclasses
import enum
import json
from collections.abc import Mapping

from nsynth_common import dataclass_json


class Kind(enum.Enum):
  """What happened, and to what. The value names the counter and the key."""
  WRITTEN = 'written'                        # a note read -> a split
  FILTERED = 'filtered'                      # a note read, left out
  DEAD_LETTER = 'dead_letter'                # a note read, unusable
  AUGMENTED = 'augmented'                    # an extra record: a copy
  WINDOW = 'window'                          # a record: a recording's window
  RECORDING_WINDOWED = 'recording/windowed'  # a recording, cut into windows
  RECORDING_FILTERED = 'recording/filtered'
  RECORDING_DEAD_LETTER = 'recording/dead_letter'
  SILENT_WINDOWS = 'recording/silent_windows'   # windows skipped (no detail)


@dataclasses.dataclass(frozen=True)
class OutcomeKey:
  """One outcome: `Kind.WRITTEN` with detail 'train', say."""
  kind: Kind
  detail: str = ''

  @property
  def name(self) -> str:
    """'written/train', 'recording/dead_letter/not_audio', ..."""
    return '/'.join(p for p in (self.kind.value, self.detail) if p)

  @property
  def counter_name(self) -> str:
    """The Beam counter (namespace METRICS_NAMESPACE) that counts it."""
    return self.name.replace('/', '_')

  def as_tuple(self) -> tuple[str, str]:
    """A form Beam can key and combine by (deterministically encoded)."""
    return self.kind.value, self.detail

  @classmethod
  def from_tuple(cls, key: tuple[str, str]) -> 'OutcomeKey':
    return cls(Kind(key[0]), key[1])


METRICS_NAMESPACE = 'nsynth'
# Counters beside the outcomes: what was read, and what was lost quietly.
NOTES_READ_COUNTER = 'notes_read'
RECORDINGS_READ_COUNTER = 'recordings_read'
AUGMENTATION_FAILED_COUNTER = 'augmentation_failed'


@dataclasses.dataclass(frozen=True)
class DeadLetter:
  """A note (or a recording) that could not become examples, and why; one
  JSON line of the job's dead_letters-*.jsonl."""
  note_str: str
  file: str
  split: str
  kind: str     # stable short reason, e.g. 'missing_audio', 'non_finite'
  reason: str   # readable detail, never the file's bytes
  what: str = 'note'   # or RECORDING (--recordings): accounted apart

  def to_json_line(self) -> str:
    return json.dumps(dataclasses.asdict(self), sort_keys=True)

  @property
  def outcome(self) -> OutcomeKey:
    return OutcomeKey(Kind.RECORDING_DEAD_LETTER if self.what == RECORDING
                      else Kind.DEAD_LETTER, self.kind)


RECORDING = 'recording'


def _under(counts: Mapping[OutcomeKey, int], kind: Kind) -> dict[str, int]:
  return dict(sorted((key.detail, n) for key, n in counts.items()
                     if key.kind is kind))


@dataclasses.dataclass(frozen=True)
class RecordingAccounting:
  """What happened to each recording of --recordings, and to its windows."""
  windowed: dict[str, int]          # split -> recordings cut into windows
  filtered: dict[str, int]          # filter -> recordings
  dead_lettered: dict[str, int]     # dead-letter kind -> recordings
  windows_written: dict[str, int]   # split -> windows written
  silent_windows_skipped: int

  @property
  def read(self) -> int:
    return (sum(self.windowed.values()) + sum(self.filtered.values()) +
            sum(self.dead_lettered.values()))

  # As JSON: its fields after `read`, which is derived (and checked).
  def to_json(self) -> dict:
    return {'read': self.read, **dataclass_json.to_json(self)}

  @classmethod
  def from_json(cls, data, where: str = 'recordings'
                ) -> 'RecordingAccounting':
    """Raises: dataclass_json.FieldError: naming the field at fault."""
    return _with_read_checked(
        dataclass_json.from_json(cls, _without_read(data), where), data,
        where)


@dataclasses.dataclass(frozen=True)
class Accounting:
  """Every note read, exactly once; the extra records and the recordings
  apart. The manifest's `accounting`."""
  written: dict[str, int]           # split -> notes
  filtered: dict[str, int]          # filter -> notes
  dead_lettered: dict[str, int]     # dead-letter kind -> notes
  # split -> augmented copies written
  augmented: dict[str, int] = dataclasses.field(default_factory=dict)
  recordings: RecordingAccounting | None = None

  @property
  def read(self) -> int:
    """The notes read, as the outcomes account for them."""
    return (sum(self.written.values()) + sum(self.filtered.values()) +
            sum(self.dead_lettered.values()))

  @classmethod
  def from_counts(cls, counts: Mapping[OutcomeKey, int],
                  with_recordings: bool) -> 'Accounting':
    recordings = None
    if with_recordings:
      recordings = RecordingAccounting(
          windowed=_under(counts, Kind.RECORDING_WINDOWED),
          filtered=_under(counts, Kind.RECORDING_FILTERED),
          dead_lettered=_under(counts, Kind.RECORDING_DEAD_LETTER),
          windows_written=_under(counts, Kind.WINDOW),
          silent_windows_skipped=sum(
              n for key, n in counts.items()
              if key.kind is Kind.SILENT_WINDOWS))
    return cls(written=_under(counts, Kind.WRITTEN),
               filtered=_under(counts, Kind.FILTERED),
               dead_lettered=_under(counts, Kind.DEAD_LETTER),
               augmented=_under(counts, Kind.AUGMENTED),
               recordings=recordings)

  # As JSON: `read` first, derived (and checked); `recordings` only for a
  # job given --recordings.
  def to_json(self) -> dict:
    data = {'read': self.read, **dataclass_json.to_json(self)}
    del data['recordings']
    if self.recordings is not None:
      data['recordings'] = self.recordings.to_json()
    return data

  @classmethod
  def from_json(cls, data, where: str = 'accounting') -> 'Accounting':
    """Raises: dataclass_json.FieldError: naming the field at fault."""
    fields = _without_read(data)
    recordings = (fields.pop('recordings', None) if isinstance(fields, dict)
                  else None)
    accounting = dataclass_json.from_json(cls, fields, where)
    if recordings is not None:
      accounting = dataclasses.replace(
          accounting, recordings=RecordingAccounting.from_json(
              recordings, f'{where}.recordings'))
    return _with_read_checked(accounting, data, where)


def _without_read(data):
  return ({k: v for k, v in data.items() if k != 'read'}
          if isinstance(data, dict) else data)


def _with_read_checked(accounting, data: dict, where: str):
  if data.get('read', accounting.read) != accounting.read:
    raise dataclass_json.FieldError(
        f'{where}.read disagrees with the outcomes it sums')
  return accounting
