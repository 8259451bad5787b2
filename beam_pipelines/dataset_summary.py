"""The manifest of a run, assembled inside the pipeline from what it wrote.

Counts per split and family, instruments, sample libraries, the training
split's MFCC statistics and the accounting of every outcome are combined
over the written batches, then assembled into manifest.json's text.
"""

import collections
import posixpath
from collections.abc import Iterable

import apache_beam as beam

import nsynth_contracts
from beam_pipelines import splits
from beam_pipelines import transforms
from beam_pipelines.job_config import JobConfig
from nsynth_contracts import manifest as manifest_lib

# The inputs of WriteManifest: the written FeaturizedBatches, and the
# accounting of every outcome (CountOutcomes' single dict).
BATCHES = 'batches'
ACCOUNTING = 'accounting'
_FAMILY = 'family'     # (split, _FAMILY, family) -> records
_LIBRARY = 'library'   # (split, _LIBRARY, library) -> notes and windows read


class WriteManifest(beam.PTransform):
  """{BATCHES, ACCOUNTING} -> manifest.json in `staging_dir`."""

  def __init__(self, config: JobConfig, staging_dir: str):
    super().__init__()
    self._config = config
    self._staging_dir = staging_dir

  def expand(self, inputs):
    batches = inputs[BATCHES]
    counts = (batches
              | 'SplitCounts' >> beam.FlatMap(_split_counts)
              | 'SumCounts' >> beam.CombinePerKey(sum)
              | 'CountsToDict' >> beam.combiners.ToDict())
    instrument_pairs = (
        batches
        | 'SplitInstrument' >> beam.FlatMap(_instrument_pairs)
        | 'DistinctInstruments' >> beam.Distinct()
        | 'InstrumentsToList' >> beam.combiners.ToList())
    statistics = (
        batches
        | 'StatisticsSplit' >> beam.Filter(
            lambda b, split: b.split == split, self._config.statistics_split)
        | 'Mfccs' >> beam.Map(lambda b: b.mfccs)
        | 'Statistics' >> beam.CombineGlobally(transforms.MfccStatisticsFn()))
    return (batches.pipeline
            | 'Seed' >> beam.Create([None])
            | 'Assemble' >> beam.Map(
                assemble_manifest, self._config,
                beam.pvalue.AsSingleton(counts),
                beam.pvalue.AsSingleton(instrument_pairs),
                beam.pvalue.AsSingleton(inputs[ACCOUNTING]),
                beam.pvalue.AsSingleton(statistics))
            | 'Write' >> beam.io.WriteToText(
                posixpath.join(self._staging_dir,
                               manifest_lib.MANIFEST_FILENAME),
                shard_name_template='', num_shards=1))


def _split_counts(batch: transforms.FeaturizedBatch
                  ) -> Iterable[tuple[tuple[str, str, str], int]]:
  """Records per (split, family); notes read per (split, library)."""
  counts = collections.Counter(
      (note.split, _FAMILY, note.family) for note in batch.notes)
  counts.update((note.split, _LIBRARY, note.library)
                for i, note in enumerate(batch.notes)
                if note.library and not batch.copy_of(i))
  return counts.items()


def _instrument_pairs(batch: transforms.FeaturizedBatch
                      ) -> Iterable[tuple[str, str]]:
  return {(note.split, note.instrument_str) for note in batch.notes}


def assemble_manifest(_, config: JobConfig, counts: dict,
                      instrument_pairs: list, accounting: dict,
                      statistics: dict | None) -> str:
  """The manifest's JSON text, from the pipeline's combined side inputs."""
  split_summaries = {}
  for split in config.output_splits:
    families = {f: counts.get((split, _FAMILY, f), 0)
                for f in config.vocabulary.families}
    split_summaries[split] = manifest_lib.SplitSummary(
        num_examples=sum(families.values()),
        families=families,
        num_instruments=sum(1 for s, _ in instrument_pairs if s == split),
        file_pattern=manifest_lib.shard_pattern(split, config.compression),
        num_augmented=accounting.get(f'augmented/{split}', 0),
        libraries={name: n for (s, kind, name), n in sorted(counts.items())
                   if s == split and kind == _LIBRARY})
  splits_of = {}
  for split, instrument in instrument_pairs:
    splits_of.setdefault(instrument, set()).add(split)
  shared = sorted(i for i, s in splits_of.items() if len(s) > 1)
  method = config.split_method
  def under(prefix):
    return {k[len(prefix):]: v for k, v in sorted(accounting.items())
            if k.startswith(prefix)}
  filtered, dead = under('filtered/'), under('dead_letter/')
  written, augmented = under('written/'), under('augmented/')
  recordings_accounting = None
  if config.recordings:
    windowed = under('recording/windowed/')
    recording_filtered = under('recording/filtered/')
    recording_dead = under('recording/dead_letter/')
    recordings_accounting = {
        'read': (sum(windowed.values()) + sum(recording_filtered.values()) +
                 sum(recording_dead.values())),
        'windowed': windowed,
        'filtered': recording_filtered,
        'dead_lettered': recording_dead,
        'windows_written': under('window/'),
        'silent_windows_skipped': accounting.get('recording/silent_windows',
                                                 0),
    }
  manifest = manifest_lib.Manifest(
      project_version=nsynth_contracts.__version__,
      feature_params=config.params,
      vocabulary=config.vocabulary,
      splits=split_summaries,
      normalization=(manifest_lib.Normalization(
          split=config.statistics_split, **statistics) if statistics else None),
      filters={'kept_sources': list(config.kept_sources),
               'dropped_families': list(config.dropped_families),
               'max_notes_per_family': config.max_notes_per_family},
      split_method={
          'name': method.value,
          'description': method.description,
          'fractions': (list(config.split_fractions)
                        if method is not splits.SplitMethod.DIRECTORIES
                        else None),
          'inputs': [d for d, _ in config.inputs],
          'instruments_in_several_splits': len(shared),
          'instrument_disjoint': not shared,
          'holdout_library': config.holdout_library or None,
      },
      accounting={
          'read': sum(written.values()) + sum(filtered.values()) +
                  sum(dead.values()),
          'written': written,
          'filtered': filtered,
          'dead_lettered': dead,
          'augmented': augmented,   # records beyond the notes read
          **({'recordings': recordings_accounting}
             if recordings_accounting else {}),
      },
      audio_samples=config.params.clip_samples if config.keep_audio else None,
      compression=config.compression,
      augmentation=({'split': config.statistics_split,
                     **config.augment.to_json()}
                    if config.augment.copies else None))
  return manifest.dumps()
