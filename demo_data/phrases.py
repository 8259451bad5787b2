"""Solo phrases: recordings of one instrument playing, 10-30 s long.

Users have recordings, not 4-second notes. Each demo instrument (one
library, one General MIDI program) also plays a few phrases: overlapping
notes of varied length, loudness and pitch within its family's range. They
share the notes' instrument-disjoint splits, so a test phrase comes from an
instrument no training note or phrase was played on.

One directory of labelled recordings per split, `<output_dir>/phrases-<split>/`
(nsynth_contracts.recordings_layout), of 16 kHz mono 16-bit WAVs.
"""

import json
import os
from collections.abc import Sequence

import numpy as np

from demo_data import general_midi
from demo_data import libraries
from demo_data import notes
from nsynth_contracts import audio
from nsynth_contracts import labels
from nsynth_contracts import recordings_layout as layout
from nsynth_contracts import stable_random


def phrase_events(family: str, seconds: float, rng: np.random.Generator
                  ) -> list[tuple[float, bool, int, int]]:
  """Notes 0.3-2 s long, starting 0.15-1 s apart (so they often overlap),
  velocities 40-127, pitches anywhere in the family's range."""
  low, high = general_midi.PITCH_RANGE[family]
  events, start = [], 0.0
  while start < seconds - 0.5:
    length = rng.uniform(0.3, 2.0)
    pitch = int(rng.integers(low, high + 1))
    velocity = int(rng.integers(40, 128))
    events += [(start, True, pitch, velocity),
               (min(start + length, seconds), False, pitch, 0)]
    start += rng.uniform(0.15, 1.0)
  return sorted(events, key=lambda e: (e[0], e[1]))


def render_phrases(output_dir: str, per_instrument: int = 1,
                   library_names: Sequence[str] | None = None,
                   kept_sources: Sequence[str] = labels.DEFAULT_KEPT_SOURCES,
                   dropped_families: Sequence[str] = (
                       labels.DEFAULT_DROPPED_FAMILIES),
                   progress: bool = False) -> dict[str, int]:
  """Renders `per_instrument` phrases of every instrument whose family and
  source a default job keeps; returns phrases per split."""
  chosen = libraries.resolve(list(library_names or []))
  renderers = {lib.name: notes.NoteRenderer(lib.path()) for lib in chosen}
  plan = [(instrument, k)
          for instrument in notes.assign_instruments(list(renderers))
          if instrument.gm.source in kept_sources
          and instrument.gm.family not in dropped_families
          for k in range(per_instrument)]
  if progress:
    import tqdm
    plan = tqdm.tqdm(plan, desc='Rendering phrases', unit='phrase')
  labels_by_split = {split: {} for split in notes.SPLITS}
  for split in notes.SPLITS:
    os.makedirs(os.path.join(output_dir, f'phrases-{split}', layout.AUDIO_DIR),
                exist_ok=True)
  for instrument, k in plan:
    name = f'{instrument.instrument_str}-phrase{k}.wav'
    rng = stable_random.generator(name)
    seconds = float(rng.uniform(10.0, 30.0))
    waveform = renderers[instrument.library].render_events(
        instrument.gm.program, phrase_events(instrument.gm.family, seconds,
                                             rng), seconds)
    split_dir = os.path.join(output_dir, f'phrases-{instrument.split}')
    with open(layout.audio_path(split_dir, name), 'wb') as f:
      f.write(audio.encode_pcm16(waveform, notes.SAMPLE_RATE_HZ))
    labels_by_split[instrument.split][name] = layout.label(
        instrument.gm.family, instrument.gm.source, instrument.instrument_str,
        instrument.library)
  for split, entries in labels_by_split.items():
    with open(os.path.join(output_dir, f'phrases-{split}', layout.LABELS_JSON),
              'w') as f:
      json.dump(entries, f, indent=1)
  return {split: len(entries) for split, entries in labels_by_split.items()}
