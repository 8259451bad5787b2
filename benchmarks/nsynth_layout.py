"""NSynth's size and layout, with no disk for audio: the scale benchmark's data.

`lay_out(dataset_dir, scale, pool_dir)` writes
`<dataset_dir>/nsynth-{train,valid,test}/`, each with `examples.json` (every
field of NSynth's schema, no other) and `audio/<note_str>.wav`, at `scale` of
NSynth's 289,205 / 12,678 / 4,096 notes and 953 / 53 / 24 instruments, no
instrument in two splits. Every WAV is a hard link to a demo note rendered
once into `pool_dir` (`render_pool`), so 306k notes cost directory entries,
not 39 GB. benchmarks.nsynth_scale is the command that uses it.

Where it departs from NSynth: the notes per (family, source) follow NSynth's
whole-dataset table (NSYNTH_NOTES, an assumption) in every split; an
instrument plays its share of NSynth's 88 pitches x 5 velocities, each linked
to the nearest rendered pitch and velocity of one demo instrument of its
family (and source and split, where the demo has one); every split keeps at
least 10 instruments, so that small runs still hold most families.
"""

import collections
import dataclasses
import json
import math
import os
from collections.abc import Sequence

from demo_data import general_midi
from demo_data import libraries
from demo_data import notes as demo_notes

# NSynth's splits: (notes, instruments).
NSYNTH_SPLITS = {'train': (289_205, 953), 'valid': (12_678, 53),
                 'test': (4_096, 24)}
# NSynth's notes per (family, source) over the three splits, as the table on
# NSynth's dataset page gives them (from memory: no copy of the page is
# reachable here, so this is an assumption; its rows and columns add up to
# the dataset's 305,979 notes, 86,777 of them synthetic). Each split is given
# the same proportions: NSynth publishes no per-split table.
NSYNTH_NOTES = {
    ('bass', 'acoustic'): 200, ('bass', 'electronic'): 8_387,
    ('bass', 'synthetic'): 60_368, ('brass', 'acoustic'): 13_760,
    ('brass', 'electronic'): 70, ('flute', 'acoustic'): 6_572,
    ('flute', 'electronic'): 35, ('flute', 'synthetic'): 2_816,
    ('guitar', 'acoustic'): 13_343, ('guitar', 'electronic'): 16_805,
    ('guitar', 'synthetic'): 5_275, ('keyboard', 'acoustic'): 8_508,
    ('keyboard', 'electronic'): 42_645, ('keyboard', 'synthetic'): 3_838,
    ('mallet', 'acoustic'): 27_722, ('mallet', 'electronic'): 5_581,
    ('mallet', 'synthetic'): 1_763, ('organ', 'acoustic'): 176,
    ('organ', 'electronic'): 36_401, ('reed', 'acoustic'): 14_262,
    ('reed', 'electronic'): 76, ('reed', 'synthetic'): 528,
    ('string', 'acoustic'): 20_510, ('string', 'electronic'): 84,
    ('synth_lead', 'synthetic'): 5_501, ('vocal', 'acoustic'): 3_925,
    ('vocal', 'electronic'): 140, ('vocal', 'synthetic'): 6_688,
}
PITCHES = range(21, 109)                  # a piano's 88 keys, as NSynth's
VELOCITIES = demo_notes.NSYNTH_VELOCITIES
MIN_INSTRUMENTS_PER_SPLIT = 10
POOL_LIBRARIES = libraries.PIP_LIBRARIES  # the same on every machine
WAV_BYTES = 44 + 2 * demo_notes.SAMPLE_RATE_HZ * 4   # header + 4 s of int16


class LayoutError(ValueError):
  """The dataset cannot be laid out as asked; the message says why."""


@dataclasses.dataclass(frozen=True)
class Instrument:
  """One instrument of the laid-out dataset."""
  instrument_id: int       # NSynth's `instrument`: unique over the dataset
  instrument_str: str      # <family>_<source>_<NNN>
  family: str
  source: str
  number: int              # the NNN: counts up per (family, source)
  split: str
  num_notes: int


def apportion(total: int, weights: Sequence[float]) -> list[int]:
  """`total` split in proportion to `weights` by largest remainder; ties go
  to the earlier weight. The parts add up to `total` exactly."""
  whole = sum(weights)
  shares = [total * w / whole for w in weights]
  parts = [math.floor(s) for s in shares]
  by_remainder = sorted(range(len(weights)),
                        key=lambda i: (parts[i] - shares[i], i))
  for i in by_remainder[:total - sum(parts)]:
    parts[i] += 1
  return parts


def split_sizes(scale: float) -> dict[str, tuple[int, int]]:
  """split -> (notes, instruments) at `scale` of NSynth's counts."""
  if not 0 < scale <= 1:
    raise LayoutError(f'the scale must be in (0, 1], got {scale}')
  most = len(PITCHES) * len(VELOCITIES)   # notes one instrument can play
  sizes = {}
  for split, (notes, instruments) in NSYNTH_SPLITS.items():
    n = max(1, round(notes * scale))
    sizes[split] = (n, min(n, max(round(instruments * scale),
                                  MIN_INSTRUMENTS_PER_SPLIT, -(-n // most))))
  return sizes


def plan_instruments(scale: float) -> list[Instrument]:
  """Every instrument of the dataset at `scale`, in split order.

  Each split's instruments go to (family, source) cells in proportion to
  NSynth's notes, and its notes evenly to its instruments. An instrument
  belongs to one split only.
  """
  cells = list(NSYNTH_NOTES)
  numbers = collections.Counter()
  planned = []
  for split, (n_notes, n_instruments) in split_sizes(scale).items():
    counts = apportion(n_instruments, list(NSYNTH_NOTES.values()))
    members = [cell for cell, count in zip(cells, counts)
               for _ in range(count)]
    shares = apportion(n_notes, [1] * len(members))
    for (family, source), share in zip(members, shares):
      number = numbers[(family, source)]
      numbers[(family, source)] += 1
      planned.append(Instrument(
          len(planned), f'{family}_{source}_{number:03d}', family, source,
          number, split, share))
  return planned


def instrument_notes(num_notes: int) -> list[tuple[int, int]]:
  """(pitch, velocity) of an instrument's notes: `num_notes` spread evenly
  over NSynth's 88 pitches x 5 velocities, each at the middle of its share
  (a single note sits mid-keyboard, not on the lowest key)."""
  grid = [(p, v) for p in PITCHES for v in VELOCITIES]
  return [grid[(2 * i + 1) * len(grid) // (2 * num_notes)]
          for i in range(num_notes)]


def pool_size(pitch_step: int, velocities: Sequence[int]) -> int:
  """Notes the demo renders for the pool with these settings."""
  return sum(1 for _ in demo_notes.planned_notes(pitch_step, velocities,
                                                 POOL_LIBRARIES))


def auto_pitch_step(total_notes: int) -> int:
  """The finest pitch step whose pool (five velocities) is no larger than
  the dataset: every pitch at full size, coarser for small runs."""
  for step in range(1, 25):
    if pool_size(step, VELOCITIES) <= max(total_notes, 1000):
      return step
  return 24


def render_pool(pool_dir: str, pitch_step: int,
                velocities: Sequence[int] = VELOCITIES) -> int:
  """Renders the demo's notes of the pip libraries into `pool_dir` (the
  demo's own layout and splits); returns how many."""
  counts = demo_notes.render_dataset(pool_dir, pitch_step, velocities,
                                     POOL_LIBRARIES)
  return sum(counts.values())


class Pool:
  """The rendered demo notes the dataset links to, by instrument."""

  def __init__(self, pool_dir: str):
    self._instruments = collections.defaultdict(dict)  # str -> {(p, v): …}
    self._kind = {}                                     # str -> (f, s, split)
    for split in demo_notes.SPLITS:
      split_dir = os.path.join(pool_dir, f'nsynth-{split}')
      with open(os.path.join(split_dir, 'examples.json')) as f:
        for key, entry in json.load(f).items():
          name = entry['instrument_str']
          self._kind[name] = (entry['instrument_family_str'],
                              entry['instrument_source_str'], split)
          self._instruments[name][(entry['pitch'], entry['velocity'])] = (
              os.path.join(split_dir, 'audio', key + '.wav'),
              entry['qualities'])
    self._pitches = {name: sorted({p for p, _ in played})
                     for name, played in self._instruments.items()}
    self._nearest = {}

  def instrument_for(self, instrument: Instrument) -> str:
    """The demo instrument that plays `instrument`: one of its split (so
    valid and test sound like instruments train never heard), family and
    source; failing that of its split and family; then of its family."""
    tiers = (lambda f, s, split: (f, s, split) == (
        instrument.family, instrument.source, instrument.split),
             lambda f, s, split: (f, split) == (instrument.family,
                                                instrument.split),
             lambda f, s, split: f == instrument.family)
    for matches in tiers:
      names = sorted(n for n, kind in self._kind.items() if matches(*kind))
      if names:
        return names[instrument.number % len(names)]
    raise LayoutError(f'the rendered pool has no {instrument.family} '
                     'instrument')

  def note(self, name: str, pitch: int, velocity: int
           ) -> tuple[str, list[int]]:
    """(WAV path, qualities) of the rendered note nearest in pitch, then in
    velocity."""
    key = (name, pitch, velocity)
    if key not in self._nearest:
      played = self._instruments[name]
      p = min(self._pitches[name], key=lambda x: (abs(x - pitch), x))
      v = min((v for q, v in played if q == p),
              key=lambda x: (abs(x - velocity), x))
      self._nearest[key] = played[(p, v)]
    return self._nearest[key]


def nsynth_entry(instrument: Instrument, note_id: int, pitch: int,
                 velocity: int, qualities: Sequence[int]) -> dict:
  """One examples.json value: the demo's writer of NSynth's schema, without
  the demo's own `library` field."""
  entry = demo_notes.note_entry(
      demo_notes.DemoInstrument(
          # The program plays no part in the entry.
          gm=general_midi.GmInstrument(0, instrument.family,
                                       instrument.source),
          library='', instrument_id=instrument.instrument_id,
          instrument_str=instrument.instrument_str, split=instrument.split),
      note_id, pitch, velocity, qualities)
  del entry['library']
  return entry


def lay_out(dataset_dir: str, scale: float, pool_dir: str) -> dict[str, int]:
  """Writes `<dataset_dir>/nsynth-{train,valid,test}/` at `scale`, each
  `examples.json` plus `audio/<note_str>.wav` hard-linked to the pool's WAVs
  (no disk for audio). Returns notes per split. Deterministic."""
  pool = Pool(pool_dir)
  written = collections.Counter()
  by_split = collections.defaultdict(list)
  for instrument in plan_instruments(scale):
    by_split[instrument.split].append(instrument)
  note_id = 0
  for split, instruments in by_split.items():
    split_dir = os.path.join(dataset_dir, f'nsynth-{split}')
    os.makedirs(os.path.join(split_dir, 'audio'))
    # Written an entry at a time: the train split's 289k entries never sit
    # in memory together.
    with open(os.path.join(split_dir, 'examples.json'), 'w') as f:
      f.write('{')
      for instrument in instruments:
        source = pool.instrument_for(instrument)
        for pitch, velocity in instrument_notes(instrument.num_notes):
          path, qualities = pool.note(source, pitch, velocity)
          entry = nsynth_entry(instrument, note_id, pitch, velocity,
                               qualities)
          os.link(path, os.path.join(split_dir, 'audio',
                                     entry['note_str'] + '.wav'))
          f.write(('\n' if not written[split] else ',\n') +
                  json.dumps(entry['note_str']) + ': ' + json.dumps(entry))
          written[split] += 1
          note_id += 1
      f.write('\n}\n')
  return dict(written)
