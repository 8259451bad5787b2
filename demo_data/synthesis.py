"""Synthesis families: NSynth-layout notes computed from drawn model controls.

A sample library is one family of sounds; a synthesis toolkit is another, and
training on a second family beside the samples helps most (DESIGN.md). Each
family here is one toolkit (`stk`: demo_data.stk_models; `faust`:
demo_data.faust_models) whose models stand for NSynth instruments. An
instrument is one draw of a model's controls (body size, excitation,
stiffness, damping, brightness, vibrato, attack) from a generator seeded by
a stable key, so hundreds of distinct instruments are cheap and every run
draws the same ones.

`render_family` writes `<output_dir>/<family>/nsynth-{train,valid,test}/`
(examples.json + audio/<note_str>.wav: mono 16-bit PCM, 16 kHz, 4 s, held
3 s and released 1 s, NSynth's schema plus `library` = the family's name and
`synthesis_model`), and `<output_dir>/<family>/checks.json`, the counts of
the note checks (demo_data.note_checks) per model. Of each model's instruments
the last goes to test and the one before to valid, so every model is heard in
every split and no instrument is in two.
"""

import collections
import concurrent.futures
import dataclasses
import importlib
import importlib.util
import json
import multiprocessing
import os
from collections.abc import Iterator
from collections.abc import Sequence
from typing import Any
from typing import Protocol

import numpy as np

from demo_data import general_midi
from demo_data import note_checks
from demo_data import notes
from nsynth_contracts import audio
from nsynth_contracts import stable_random


@dataclasses.dataclass(frozen=True)
class SynthesisFamily:
  """One toolkit's models and how to install it."""
  name: str                 # the `library` of its notes, and its directory
  models_module: str        # has models() -> list of SynthModel
  toolkit_module: str       # imported when a note is rendered
  requirement: str          # for pip
  # Its instrument ids start here, far from the sample libraries' and each
  # other's, so a dataset joining several directories never has two
  # instruments with one id.
  first_instrument_id: int


FAMILIES: dict[str, SynthesisFamily] = {f.name: f for f in (
    SynthesisFamily('stk', 'demo_data.stk_models', 'synthesistoolkit',
                    'synthesistoolkit==0.0.1', 100_000),
    SynthesisFamily('faust', 'demo_data.faust_models', 'dawdreamer',
                    'dawdreamer==0.9.0', 200_000),
)}


class SynthModel(Protocol):
  """A model of one kind of instrument, played note by note."""
  name: str                       # unique within its family, e.g. 'Brass'
  family: str                     # the NSynth family it stands for
  source: str                     # the NSynth source of what it imitates
  pitch_range: tuple[int, int]    # MIDI pitches it plays in tune, inclusive
  # 0, or -1 where its lowest stop sounds an octave below the key (an
  # organ's 16'): the checks hear the note's pitch there.
  sounding_octave: int

  def draw(self, rng: np.random.Generator) -> Any:
    """One instrument: a frozen dataclass of controls."""

  def render(self, controls: Any, pitch: int, velocity: int) -> np.ndarray:
    """float [64000] at 16 kHz: held 3 s, released 1 s, before any gain."""


class SynthesisMissingError(ValueError):
  """A family was asked for whose toolkit is not installed."""


@dataclasses.dataclass(frozen=True)
class SynthesisSizes:
  """How many notes each family renders, and how hard it tries."""
  instruments_per_model: int = 6
  pitch_step: int = 16
  velocities: tuple[int, ...] = (50, 100)
  seed: int = 0
  max_draws: int = 16             # per instrument, before it is given up
  min_kept_fraction: float = 0.75  # of a draw's notes, or it is redrawn


@dataclasses.dataclass
class ModelChecks:
  """What the checks did to one model's draws and notes."""
  instruments: int = 0
  draws: int = 0
  rejected_draws: int = 0
  notes: int = 0               # rendered, in kept and rejected draws
  kept_notes: int = 0
  dropped_notes: int = 0       # failed in a kept draw
  problems: dict[str, int] = dataclasses.field(default_factory=dict)

  def add(self, other: 'ModelChecks') -> None:
    for field in dataclasses.fields(self):
      if field.name != 'problems':
        setattr(self, field.name,
                getattr(self, field.name) + getattr(other, field.name))
    for problem, count in other.problems.items():
      self.problems[problem] = self.problems.get(problem, 0) + count


def family_models(name: str) -> list[SynthModel]:
  """The models of family `name`.

  Raises:
    SynthesisMissingError: unknown name, or its toolkit is not installed.
  """
  if name not in FAMILIES:
    raise SynthesisMissingError(f'--synthesis: unknown family {name!r}; '
                                f'known: {sorted(FAMILIES)}')
  family = FAMILIES[name]
  if importlib.util.find_spec(family.toolkit_module) is None:
    raise SynthesisMissingError(
        f'--synthesis={name} needs {family.requirement}, which is not '
        f'installed: pip install {family.requirement}')
  return importlib.import_module(family.models_module).models()


def family_model(family: str, name: str) -> SynthModel:
  """Model `name` of family `family`.

  Raises:
    SynthesisMissingError: see family_models; or no model of that name.
  """
  for model in family_models(family):
    if model.name == name:
      return model
  raise SynthesisMissingError(f'--synthesis={family} has no model {name!r}')


def split_of(index: int, count: int) -> str:
  """Of a model's `count` instruments the last is test, the one before valid."""
  if count >= 3:
    return {count - 1: 'test', count - 2: 'valid'}.get(index, 'train')
  return 'train'


def pitches(model: SynthModel, index: int, pitch_step: int) -> list[int]:
  """Every pitch_step-th pitch the model and its family share, starting
  `index` pitches in, so a model's instruments cover different pitches."""
  family_low, family_high = general_midi.PITCH_RANGE[model.family]
  low = max(family_low, model.pitch_range[0])
  high = min(family_high, model.pitch_range[1])
  return list(range(low + index % pitch_step, high + 1, pitch_step))


def play(model: SynthModel, controls: Any, plan: Sequence[tuple[int, int]],
         checks: ModelChecks, allowed_failures: int
         ) -> list[tuple[int, int, np.ndarray]] | None:
  """The notes of one draw that pass, normalised; None once more than
  `allowed_failures` fail (the draw is rejected, the rest not rendered)."""
  kept, failed = [], 0
  for pitch, velocity in plan:
    raw = np.asarray(model.render(controls, pitch, velocity), np.float64)
    problem = note_checks.note_problem(raw,
                                       pitch + 12 * model.sounding_octave)
    checks.notes += 1
    if problem:
      checks.problems[problem] = checks.problems.get(problem, 0) + 1
      failed += 1
      if failed > allowed_failures:
        return None
      continue
    kept.append((pitch, velocity, note_checks.normalise(raw, velocity)))
  return kept


def draw_instrument(family: str, model: SynthModel, index: int,
                    sizes: SynthesisSizes, checks: ModelChecks
                    ) -> tuple[Any, list[tuple[int, int, np.ndarray]]] | None:
  """Draws controls until most notes pass: (controls, kept notes), or None
  after sizes.max_draws rejected draws."""
  plan = [(pitch, velocity)
          for pitch in pitches(model, index, sizes.pitch_step)
          for velocity in sizes.velocities]
  allowed = int(len(plan) * (1.0 - sizes.min_kept_fraction))
  for attempt in range(sizes.max_draws):
    rng = stable_random.generator(
        f'{family}/{model.name}/{index}/{attempt}/{sizes.seed}')
    controls = model.draw(rng)
    checks.draws += 1
    kept = play(model, controls, plan, checks, allowed)
    if kept:
      checks.dropped_notes += len(plan) - len(kept)
      checks.kept_notes += len(kept)
      checks.instruments += 1
      return controls, kept
    checks.rejected_draws += 1
  return None


def _drawn_in_worker(family: str, model_name: str, index: int,
                     sizes: SynthesisSizes):
  """draw_instrument in a pool's worker: (what it drew, its checks)."""
  model = family_model(family, model_name)
  checks = ModelChecks()
  return draw_instrument(family, model, index, sizes, checks), checks


def draw_isolated(family: str, plan: Sequence[tuple[str, int]],
                  sizes: SynthesisSizes) -> Iterator[tuple]:
  """draw_instrument for each (model name, instrument index) of `plan`, in
  processes of their own on every core; yields (model name, index, what
  it drew or None, its ModelChecks) in plan order.

  Whatever the caller's process holds, the toolkits never share it:
  importing dawdreamer (Faust, with its own LLVM) into a process that has
  imported TensorFlow kills it with SIGSEGV, and a test session or a
  benchmark may have. Spawned workers start clean, and the draws, seeded
  by their keys, come out the same in any order.
  """
  note_checks.compile_checks()   # one process writes numba's cache
  workers = max(1, min(len(plan), os.cpu_count() or 1))
  with concurrent.futures.ProcessPoolExecutor(
      max_workers=workers,
      mp_context=multiprocessing.get_context('spawn')) as pool:
    futures = [pool.submit(_drawn_in_worker, family, name, index, sizes)
               for name, index in plan]
    for (name, index), future in zip(plan, futures):
      drawn, checks = future.result()
      yield name, index, drawn, checks


def _write_note(family_dir: str, label: notes.InstrumentLabel, split: str,
                note_id: int, pitch: int, velocity: int,
                waveform: np.ndarray, model_name: str) -> dict:
  entry = notes.entry(label, note_id, pitch, velocity,
                      notes.measure_qualities(waveform))
  entry['synthesis_model'] = model_name   # ours, as `library` is
  path = os.path.join(family_dir, f'nsynth-{split}', 'audio',
                      entry['note_str'] + '.wav')
  with open(path, 'wb') as f:
    f.write(audio.encode_pcm16(waveform, notes.SAMPLE_RATE_HZ))
  return entry


def _check_sizes(sizes: SynthesisSizes) -> None:
  if sizes.instruments_per_model < 1:
    raise ValueError(f'instruments_per_model must be >= 1, got '
                     f'{sizes.instruments_per_model}')
  if sizes.pitch_step < 1:
    raise ValueError(f'pitch_step must be >= 1, got {sizes.pitch_step}')
  bad = sorted(set(sizes.velocities) - set(notes.NSYNTH_VELOCITIES))
  if bad or not sizes.velocities:
    raise ValueError(f'velocities must be some of {notes.NSYNTH_VELOCITIES}, '
                     f'got {list(sizes.velocities)}')


def render_family(output_dir: str, family: str,
                  sizes: SynthesisSizes = SynthesisSizes(),
                  progress: bool = False) -> dict[str, ModelChecks]:
  """Renders one synthesis family's three splits; returns checks per model.

  Raises:
    SynthesisMissingError: the family is unknown or not installed.
    ValueError: a size out of range.
  """
  _check_sizes(sizes)
  models = family_models(family)
  family_dir = os.path.join(output_dir, family)
  for split in notes.SPLITS:
    os.makedirs(os.path.join(family_dir, f'nsynth-{split}', 'audio'),
                exist_ok=True)
  by_name = {model.name: model for model in models}
  plan = [(model.name, index) for model in models
          for index in range(sizes.instruments_per_model)]
  results = draw_isolated(family, plan, sizes)
  if progress:
    import tqdm
    results = tqdm.tqdm(results, total=len(plan),
                        desc=f'Rendering {family} instruments',
                        unit='instrument')
  examples = {split: {} for split in notes.SPLITS}
  checks = {model.name: ModelChecks() for model in models}
  numbers = collections.Counter()
  for position, (name, index, drawn, drawn_checks) in enumerate(results):
    model = by_name[name]
    checks[name].add(drawn_checks)
    number = numbers[(model.family, model.source)]
    numbers[(model.family, model.source)] += 1
    if drawn is None:
      continue
    label = notes.InstrumentLabel(
        FAMILIES[family].first_instrument_id + position,
        f'{model.family}_{model.source}_{family}_{number:03d}',
        model.family, model.source, family)
    split = split_of(index, sizes.instruments_per_model)
    for pitch, velocity, waveform in drawn[1]:
      note_id = sum(len(e) for e in examples.values())
      entry = _write_note(family_dir, label, split, note_id, pitch, velocity,
                          waveform, model.name)
      examples[split][entry['note_str']] = entry
  for split, entries in examples.items():
    with open(os.path.join(family_dir, f'nsynth-{split}', 'examples.json'),
              'w') as f:
      json.dump(entries, f, indent=1)
  with open(os.path.join(family_dir, 'checks.json'), 'w') as f:
    json.dump({name: dataclasses.asdict(c) for name, c in checks.items()},
              f, indent=1)
  return checks
