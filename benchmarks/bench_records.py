"""What the transfer benchmarks share: the Beam job on one split directory
as a user runs it, its records read back as arrays, and which instruments
share recordings (benchmarks.generalization, benchmarks.families).

Every note goes to one training split (--split_single_input=instrument
--split_fractions=1,0,0); the benchmarks make their own folds.
"""

import contextlib
import dataclasses
import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence

import numpy as np

from benchmarks import recording_similarity
from nsynth_contracts import dataset_versions
from nsynth_contracts import manifest as manifest_lib
from nsynth_contracts import schema


@dataclasses.dataclass
class Notes:
  """The notes as read (no augmented copies) and their copies' rows."""
  features: dict[str, np.ndarray]   # feature key -> [rows, ...]
  label: np.ndarray
  instrument: np.ndarray
  copy: np.ndarray                  # 0: the note as read
  note_str: np.ndarray

  def rows(self, keep: np.ndarray) -> 'Notes':
    return Notes({k: v[keep] for k, v in self.features.items()},
                 self.label[keep], self.instrument[keep], self.copy[keep],
                 self.note_str[keep])


def write_records(split_dir: str, data_dir: str, embedding: str,
                  copies: int, extra_flags: Sequence[str] = ()) -> None:
  """The Beam job on every note, as one training split; nothing when
  `data_dir` already holds a complete dataset."""
  with contextlib.suppress(manifest_lib.ManifestError):
    dataset_versions.resolve_data_dir(data_dir)
    return   # Written by an earlier run of the benchmark.
  subprocess.run(
      [sys.executable, '-m', 'beam_pipelines.nsynth_tfrecords',
       f'--input={split_dir}', f'--output_dir={data_dir}', '--overwrite',
       '--split_single_input=instrument', '--split_fractions=1,0,0',
       '--compression=none', f'--augment_copies={copies}',
       *([f'--embedding={embedding}'] if embedding else []), *extra_flags,
       '--runner=DirectRunner', '--direct_num_workers=0',
       '--direct_running_mode=multi_threading'],
      check=True, stdout=subprocess.DEVNULL)


def read_notes(data_dir: str, with_mfcc: bool = True
               ) -> tuple[Notes, manifest_lib.Manifest]:
  """Every training record of the dataset in `data_dir`."""
  import tensorflow as tf
  data_dir = dataset_versions.resolve_data_dir(data_dir)
  manifest = manifest_lib.read(data_dir)
  files = [os.path.join(data_dir, f) for f in manifest.split_files('train')]
  kept = ((schema.MFCC,) if with_mfcc else ()) + tuple(
      manifest.representation_sizes)
  columns = {}
  for batch in tf.data.TFRecordDataset(files).batch(512):
    parsed = schema.parse_batch(
        batch, manifest.mfcc_shape,
        representation_sizes=manifest.representation_sizes)
    for key in (*kept, schema.LABEL, schema.INSTRUMENT, schema.AUGMENTATION,
                schema.NOTE_STR):
      columns.setdefault(key, []).append(parsed[key].numpy())
  columns = {k: np.concatenate(v) for k, v in columns.items()}
  return Notes({k: columns[k] for k in kept}, columns[schema.LABEL],
               np.array([i.decode() for i in columns[schema.INSTRUMENT]]),
               columns[schema.AUGMENTATION],
               np.array([n.decode() for n in columns[schema.NOTE_STR]])
               ), manifest


def library_of(instrument: str) -> str:
  """The demo's instrument names are <family>_<source>_<library>_<NNN>
  (a synthesis family's name stands where a sample library's would)."""
  return re.fullmatch(r'[a-z_]+?_(acoustic|electronic|synthetic)_(.+)_\d{3}',
                      instrument).group(2)


def recording_pairs(entries: dict[str, tuple[dict, str]],
                    cache_path: str) -> dict[tuple[str, str], float]:
  """{(instrument a, instrument b): similarity} of every two instruments
  with a note in common (benchmarks.recording_similarity), cached in
  `cache_path`.

  Args:
    entries: {note_str: (its examples.json entry, its WAV's path)}.
  """
  if os.path.exists(cache_path):
    with open(cache_path) as f:
      return {tuple(k.split('|')): v for k, v in json.load(f).items()}
  pairs = recording_similarity.similarities(
      (e['instrument_str'], e['pitch'], e['velocity'], path)
      for e, path in entries.values())
  with open(cache_path, 'w') as f:
    json.dump({'|'.join(k): v for k, v in pairs.items()}, f)
  return pairs


def split_entries(split_dir: str) -> dict[str, tuple[dict, str]]:
  """{note_str: (entry, WAV path)} of one NSynth split directory."""
  with open(os.path.join(split_dir, 'examples.json')) as f:
    entries = json.load(f)
  return {name: (e, os.path.join(split_dir, 'audio', f'{name}.wav'))
          for name, e in entries.items()}
