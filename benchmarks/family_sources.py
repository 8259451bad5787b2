"""Sources of notes for benchmarks.families, featurised by the product's
own Beam job, with every note's features cached by its audio.

A source is a sample library (`timgm6mb`, `merlin`, `sf_gmbank`, `opl3`:
demo_data.notes) or a synthesis family (`stk`, `faust`: demo_data.
synthesis). `render` writes them in NSynth's layout under a work directory;
`featurise` runs `nsynth-tfrecords` (default representation, every note in
one training split) on the notes whose WAV bytes it has not featurised
before, and keeps each note's representation in a cache keyed by the
SHA-1 of those bytes, so a family re-rendered after one model changed costs
the Beam job only that model's notes.
"""

import dataclasses
import hashlib
import json
import os
import shutil

import numpy as np

from benchmarks import bench_records
from demo_data import libraries
from demo_data import notes as demo_notes
from demo_data import synthesis
from nsynth_contracts import audio_decoding
from nsynth_contracts import labels
from nsynth_contracts import representation_kinds
from nsynth_contracts import window_params

# The nine families the default filters leave (DESIGN.md), label = position.
FAMILIES = labels.LabelVocabulary.from_filters().families
# OPL3's notes are all `synthetic`: the job keeps every source, and drops
# the families no default model predicts.
_JOB_FILTERS = ('--sources=acoustic,electronic,synthetic',
                '--drop_families=vocal,synth_lead')
# The product's default representation, as the Beam job writes it.
(_REPRESENTATION,) = (r.key for r in representation_kinds.DEFAULT)


@dataclasses.dataclass
class Bank:
  """Every featurised note of every source, row-aligned."""
  features: np.ndarray     # float32 [notes, 3012]: the default representation
  label: np.ndarray        # int [notes]: position in FAMILIES
  instrument: np.ndarray   # str [notes]: instrument_str
  source: np.ndarray       # str [notes]: library or synthesis family
  model: np.ndarray        # str [notes]: synthesis model, or 'gm<program>'
                           # for a sample library's instrument
  pitch: np.ndarray        # int [notes]
  velocity: np.ndarray     # int [notes]
  split: np.ndarray        # str [notes]: the split it was rendered into

  def rows(self, keep: np.ndarray) -> 'Bank':
    return Bank(**{f.name: getattr(self, f.name)[keep]
                   for f in dataclasses.fields(self)})


def render_samples(root: str, names: list[str], pitch_step: int,
                   velocities: list[int]) -> str:
  """The sample libraries' notes, numbered together (unique instrument
  ids), into <root>/samples/; returns that directory."""
  out = os.path.join(root, 'samples')
  if not os.path.exists(os.path.join(out, 'nsynth-test', 'examples.json')):
    demo_notes.render_dataset(out, pitch_step, velocities, names)
  return out


def gm_programs(names: list[str]) -> dict[str, str]:
  """{instrument_str: 'gm<program>'} of render_samples' instruments."""
  return {i.instrument_str: f'gm{i.gm.program}'
          for i in demo_notes.assign_instruments(names)}


def render_family(root: str, family: str,
                  sizes: synthesis.SynthesisSizes) -> str:
  """One synthesis family into <root>/<family>/; returns that directory."""
  out = os.path.join(root, family)
  if not os.path.exists(os.path.join(out, 'checks.json')):
    synthesis.render_family(root, family, sizes)
  return out


def source_entries(directory: str) -> dict[str, tuple[dict, str, str]]:
  """{note_str: (entry, WAV path, split)} of a rendered source, its notes
  of the nine predicted families and of a kept source (OPL3: any)."""
  kept = {}
  for split in demo_notes.SPLITS:
    split_dir = os.path.join(directory, f'nsynth-{split}')
    for name, (entry, path) in bench_records.split_entries(split_dir).items():
      if entry['instrument_family_str'] not in FAMILIES:
        continue
      library = libraries.BY_NAME.get(entry.get('library', ''))
      if entry['instrument_source_str'] == 'synthetic' and not (
          library and library.only_source == 'synthetic'):
        continue
      kept[name] = (entry, path, split)
  return kept


def _digest(path: str) -> str:
  with open(path, 'rb') as f:
    return hashlib.sha1(f.read()).hexdigest()


def _sounds(path: str) -> bool:
  """The job's own rule for a note with sound in it."""
  clip = audio_decoding.read_file(path, demo_notes.SAMPLE_RATE_HZ).samples
  return bool(window_params.sounding_numpy(clip[np.newaxis])[0])


def _featurise_pending(pending: dict[str, tuple[dict, str, str]],
                       work_dir: str) -> dict[str, np.ndarray]:
  """{note_str: features} from one Beam job over the pending notes."""
  job_dir = os.path.join(work_dir, 'pending')
  shutil.rmtree(job_dir, ignore_errors=True)
  split_dir = os.path.join(job_dir, 'nsynth-all')
  os.makedirs(os.path.join(split_dir, 'audio'))
  for name, (_, path, _) in pending.items():
    os.link(path, os.path.join(split_dir, 'audio', f'{name}.wav'))
  with open(os.path.join(split_dir, 'examples.json'), 'w') as f:
    json.dump({name: entry for name, (entry, _, _) in pending.items()}, f)
  records = os.path.join(job_dir, 'records')
  if not any(_sounds(path) for _, path, _ in pending.values()):
    return {}   # The job refuses a dataset of no example.
  bench_records.write_records(split_dir, records, '', 0, _JOB_FILTERS)
  notes, _ = bench_records.read_notes(records, with_mfcc=False)
  features = dict(zip(notes.note_str, notes.features[_REPRESENTATION]))
  shutil.rmtree(job_dir)
  return features


def featurise(entries: dict[str, tuple[dict, str, str]], cache_dir: str,
              programs: dict[str, str]) -> Bank:
  """The bank of `entries` (source_entries of every source, joined),
  featurising only what the cache lacks. A note the job refuses (a dead
  letter: no sound) is remembered as refused and left out of the bank."""
  os.makedirs(cache_dir, exist_ok=True)
  digests = {name: _digest(path) for name, (_, path, _) in entries.items()}
  cached, refused = {}, set()
  for file in sorted(os.listdir(cache_dir)):
    with np.load(os.path.join(cache_dir, file)) as part:
      cached.update(zip(part['digest'], part['features']))
      refused.update(part['refused'])
  pending = {n: e for n, e in entries.items()
             if digests[n] not in cached and digests[n] not in refused}
  if pending:
    print(f'featurising {len(pending)} notes with the Beam job', flush=True)
    found = _featurise_pending(pending, cache_dir + '-work')
    new = {digests[n]: v for n, v in found.items()}
    np.savez(os.path.join(cache_dir, f'part-{len(os.listdir(cache_dir))}'),
             digest=np.array(list(new), dtype=str),
             features=np.array(list(new.values()), np.float32).reshape(
                 len(new), -1 if new else 0),
             refused=np.array([digests[n] for n in pending
                               if n not in found], dtype=str))
    cached.update(new)
  names = [n for n in entries if digests[n] in cached]
  def column(get):
    return np.array([get(entries[n][0]) for n in names])
  return Bank(
      features=np.stack([cached[digests[n]] for n in names]),
      label=column(lambda e: FAMILIES.index(e['instrument_family_str'])),
      instrument=column(lambda e: e['instrument_str']),
      source=column(lambda e: e.get('library', '')),
      model=column(lambda e: e.get('synthesis_model') or
                   programs[e['instrument_str']]),
      pitch=column(lambda e: e['pitch']),
      velocity=column(lambda e: e['velocity']),
      split=np.array([entries[n][2] for n in names]))
