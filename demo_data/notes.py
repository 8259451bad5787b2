"""The demo's notes: an NSynth-layout dataset from General MIDI SoundFonts.

demo_data.render (nsynth-render-demo) is the command.

`render_dataset` writes `<output_dir>/nsynth-{train,valid,test}/`, each with
`examples.json` and `audio/<note_str>.wav` (mono 16-bit PCM, 16 kHz, 4 s:
note held 3 s, then released for 1 s), exactly NSynth's layout and JSON
schema, plus one field of ours, `library`. Each (sample library, General
MIDI program) is one instrument, named `<family>_<source>_<library>_<NNN>`;
within every library, family and source the last instrument goes to test
and the one before to valid, so valid and test hold instruments that train
never sees, as in NSynth, from every library. By default every library of
demo_data.libraries found on the machine is used. Rendering is
deterministic.
"""

import collections
import dataclasses
import json
import os
from collections.abc import Iterator
from collections.abc import Sequence

import numpy as np

from demo_data import general_midi
from demo_data import libraries
from nsynth_contracts import audio
from nsynth_contracts import labels

SAMPLE_RATE_HZ = 16000
HOLD_SECONDS = 3.0
RELEASE_SECONDS = 1.0
SPLITS = ('train', 'valid', 'test')
NSYNTH_VELOCITIES = (25, 50, 75, 100, 127)
QUALITIES = ('bright', 'dark', 'distortion', 'fast_decay', 'long_release',
             'multiphonic', 'nonlinear_env', 'percussive', 'reverb',
             'tempo-synced')


@dataclasses.dataclass(frozen=True)
class DemoInstrument:
  gm: general_midi.GmInstrument
  library: str
  instrument_id: int      # unique over the dataset, as NSynth's `instrument`
  instrument_str: str     # <family>_<source>_<library>_<NNN>
  split: str


def assign_instruments(library_names: Sequence[str] = ('timgm6mb',)
                       ) -> list[DemoInstrument]:
  """Numbers instruments NSynth's way and gives each one split.

  Within each (library, family, source) group of at least three programs the
  last goes to test and the one before to valid, so valid and test cover the
  families that survive the default source filter, with instruments train
  never sees, from every library.
  """
  groups = collections.defaultdict(list)
  for name in library_names:
    only_source = libraries.BY_NAME[name].only_source
    for gm in general_midi.instruments():
      if only_source:
        gm = dataclasses.replace(gm, source=only_source)
      groups[(name, gm.family, gm.source)].append(gm)
  assigned, numbers = [], collections.Counter()
  for (name, family, source), members in groups.items():
    for position, gm in enumerate(members):
      from_end = len(members) - position
      split = 'train'
      if len(members) >= 3:
        split = {1: 'test', 2: 'valid'}.get(from_end, 'train')
      number = numbers[(family, source)]
      numbers[(family, source)] += 1
      assigned.append(DemoInstrument(
          gm=gm, library=name, instrument_id=len(assigned),
          instrument_str=f'{family}_{source}_{name}_{number:03d}',
          split=split))
  return assigned


def note_pitches(family: str, pitch_step: int) -> range:
  low, high = general_midi.PITCH_RANGE[family]
  return range(low, high + 1, pitch_step)


def measure_qualities(waveform: np.ndarray) -> list[int]:
  """A few of NSynth's note qualities, measured from the envelope.

  Only the three that an amplitude envelope decides are set (fast_decay,
  long_release, percussive); the others stay 0 rather than being guessed.
  """
  frame = SAMPLE_RATE_HZ // 100
  env = np.sqrt(np.mean(
      waveform[:len(waveform) // frame * frame].reshape(-1, frame) ** 2,
      axis=1)) + 1e-9
  peak = env.max()
  hold_frames = int(HOLD_SECONDS * 100)
  peak_frame = int(env.argmax())
  flags = dict.fromkeys(QUALITIES, 0)
  flags['fast_decay'] = int(env[min(peak_frame + 50, hold_frames - 1)]
                            < peak * 0.01)
  flags['long_release'] = int(env[hold_frames + 50:].max() > peak * 0.1)
  flags['percussive'] = int(peak_frame < 5 and env[peak_frame + 20] < peak / 4)
  return [flags[q] for q in QUALITIES]


class NoteRenderer:
  """Plays notes on one SoundFont with tinysoundfont, NSynth's way."""

  def __init__(self, soundfont: str):
    import tinysoundfont
    self._synth = tinysoundfont.Synth(samplerate=SAMPLE_RATE_HZ)
    self._soundfont_id = self._synth.sfload(soundfont)

  def render(self, program: int, pitch: int, velocity: int) -> np.ndarray:
    """Note on for 3 s, off, 1 s of release: float32 [64000] in [-1, 1]."""
    synth = self._synth
    synth.program_select(0, self._soundfont_id, 0, program)
    synth.noteon(0, pitch, velocity)
    held = np.frombuffer(
        synth.generate(int(HOLD_SECONDS * SAMPLE_RATE_HZ)), np.float32)
    synth.noteoff(0, pitch)
    released = np.frombuffer(
        synth.generate(int(RELEASE_SECONDS * SAMPLE_RATE_HZ)), np.float32)
    synth.sounds_off()  # The next note starts from silence.
    stereo = np.concatenate([held, released]).reshape(-1, 2)
    return np.clip(stereo.mean(axis=1), -1.0, 1.0)

  def render_events(self, program: int,
                    events: Sequence[tuple[float, bool, int, int]],
                    seconds: float) -> np.ndarray:
    """A performance: (time s, on?, pitch, velocity) events, in time order.

    Returns:
      float32 [seconds * 16 kHz] in [-1, 1], mono.
    """
    synth = self._synth
    synth.program_select(0, self._soundfont_id, 0, program)
    chunks, now = [], 0
    for time, on, pitch, velocity in list(events) + [(seconds, False, -1, 0)]:
      until = int(round(min(time, seconds) * SAMPLE_RATE_HZ))
      if until > now:
        chunks.append(np.frombuffer(synth.generate(until - now), np.float32))
        now = until
      if pitch < 0:
        break
      if on:
        synth.noteon(0, pitch, velocity)
      else:
        synth.noteoff(0, pitch)
    synth.sounds_off()
    stereo = np.concatenate(chunks).reshape(-1, 2)
    return np.clip(stereo.mean(axis=1), -1.0, 1.0).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class InstrumentLabel:
  """What examples.json says of an instrument, whatever made its sound."""
  instrument_id: int
  instrument_str: str
  family: str
  source: str
  library: str


def entry(label: InstrumentLabel, note_id: int, pitch: int, velocity: int,
          qualities: Sequence[int]) -> dict:
  """One value of examples.json, with every field NSynth has."""
  return {
      'note': note_id,
      'note_str': f'{label.instrument_str}-{pitch:03d}-{velocity:03d}',
      'instrument': label.instrument_id,
      'instrument_str': label.instrument_str,
      'pitch': pitch,
      'velocity': velocity,
      'sample_rate': SAMPLE_RATE_HZ,
      'qualities': list(qualities),
      'qualities_str': [q for q, on in zip(QUALITIES, qualities) if on],
      'instrument_family': labels.NSYNTH_FAMILIES.index(label.family),
      'instrument_family_str': label.family,
      'instrument_source': labels.NSYNTH_SOURCES.index(label.source),
      'instrument_source_str': label.source,
      'library': label.library,   # ours; NSynth's own notes have none
  }


def note_entry(instrument: DemoInstrument, note_id: int, pitch: int,
               velocity: int, qualities: Sequence[int]) -> dict:
  """One value of examples.json for a sample library's instrument."""
  return entry(InstrumentLabel(instrument.instrument_id,
                               instrument.instrument_str, instrument.gm.family,
                               instrument.gm.source, instrument.library),
               note_id, pitch, velocity, qualities)


def planned_notes(pitch_step: int, velocities: Sequence[int],
                  library_names: Sequence[str] = ('timgm6mb',)
                  ) -> Iterator[tuple[DemoInstrument, int, int]]:
  for instrument in assign_instruments(library_names):
    for pitch in note_pitches(instrument.gm.family, pitch_step):
      for velocity in velocities:
        yield instrument, pitch, velocity


def render_dataset(output_dir: str, pitch_step: int = 4,
                   velocities: Sequence[int] = (50, 100),
                   library_names: Sequence[str] | None = None,
                   progress: bool = False) -> dict[str, int]:
  """Renders the three splits under output_dir; returns notes per split.

  Args:
    library_names: demo_data.libraries names; None: every one present.

  Raises:
    libraries.LibraryMissingError: a named library is not installed.
  """
  if pitch_step < 1:
    raise ValueError(f'pitch_step must be >= 1, got {pitch_step}')
  bad = sorted(set(velocities) - set(NSYNTH_VELOCITIES))
  if bad or not velocities:
    raise ValueError(f'velocities must be some of {NSYNTH_VELOCITIES}, '
                     f'got {list(velocities)}')
  chosen = libraries.resolve(list(library_names or []))
  renderers = {library.name: NoteRenderer(library.path())
               for library in chosen}
  examples = {split: {} for split in SPLITS}
  for split in SPLITS:
    os.makedirs(os.path.join(output_dir, f'nsynth-{split}', 'audio'),
                exist_ok=True)
  plan = list(planned_notes(pitch_step, velocities, list(renderers)))
  if progress:
    import tqdm
    plan = tqdm.tqdm(plan, desc='Rendering notes', unit='note')
  for note_id, (instrument, pitch, velocity) in enumerate(plan):
    waveform = renderers[instrument.library].render(instrument.gm.program,
                                                    pitch, velocity)
    entry = note_entry(instrument, note_id, pitch, velocity,
                       measure_qualities(waveform))
    split_dir = os.path.join(output_dir, f'nsynth-{instrument.split}')
    with open(os.path.join(split_dir, 'audio', entry['note_str'] + '.wav'),
              'wb') as f:
      f.write(audio.encode_pcm16(waveform, SAMPLE_RATE_HZ))
    examples[instrument.split][entry['note_str']] = entry
  for split, entries in examples.items():
    with open(os.path.join(output_dir, f'nsynth-{split}', 'examples.json'),
              'w') as f:
      json.dump(entries, f, indent=1)
  return {split: len(entries) for split, entries in examples.items()}
