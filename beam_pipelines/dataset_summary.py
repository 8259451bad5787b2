"""The manifest of a run, assembled inside the pipeline from what it wrote.

Counts per split and family, instruments, sample libraries, the training
split's MFCC and representation statistics, the precision the workers
computed the representations in and the accounting of every outcome are
combined over the written batches, then assembled into manifest.json's
text.
"""

import collections
import posixpath
from collections.abc import Iterable

import apache_beam as beam

import nsynth_contracts
from beam_pipelines import output
from beam_pipelines import splits
from beam_pipelines import statistics as statistics_lib
from beam_pipelines.batches import FeaturizedBatch
from beam_pipelines.job_config import JobConfig
from nsynth_common import dataclass_json
from nsynth_contracts import manifest as manifest_lib
from nsynth_contracts import outcomes
from nsynth_contracts import representation

# The inputs of WriteManifest: the written FeaturizedBatches, and the counts
# of every outcome (accounting.CountOutcomes' single dict).
BATCHES = 'batches'
COUNTS = 'counts'
_FAMILY = 'family'     # (split, _FAMILY, family) -> records
_LIBRARY = 'library'   # (split, _LIBRARY, library) -> notes and windows read


class WriteManifest(beam.PTransform):
  """{BATCHES, COUNTS} -> the draft manifest in `directory` (completed and
  written as manifest.json by the launcher, once the sinks have finished)."""

  def __init__(self, config: JobConfig, directory: str,
               representations: tuple[representation.WithWeights, ...] = ()):
    """Args: representations: what the records hold beside their MFCCs,
    with the weights that computed each."""
    super().__init__()
    self._config = config
    self._directory = directory
    self._representations = tuple(
        (r.representation, r.weights_sha256) for r in representations)

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
    trained_on = batches | 'StatisticsSplit' >> beam.Filter(
        lambda b, split: b.split == split, self._config.train_split)
    mfcc_statistics = (
        trained_on
        | 'MfccColumns' >> beam.Map(lambda b: b.mfccs)
        | 'MfccStatistics' >> beam.CombineGlobally(
            statistics_lib.FeatureStatisticsFn()))
    representation_statistics = (
        [trained_on
         | f'Columns_{key}' >> beam.Map(
             lambda b, key: b.representations[key], key)
         | f'Statistics_{key}' >> beam.CombineGlobally(
             statistics_lib.FeatureStatisticsFn())
         | f'Keyed_{key}' >> beam.Map(lambda s, key: (key, s), key)
         for key in (heard.key for heard, _ in self._representations)]
        | 'RepresentationStatistics' >> beam.Flatten(
            pipeline=batches.pipeline)
        | 'RepresentationStatisticsToDict' >> beam.combiners.ToDict())
    precisions = (
        batches
        | 'Precisions' >> beam.FlatMap(
            lambda b: [(b.precision, len(b.notes))] if b.precision else [])
        | 'SumPrecisions' >> beam.CombinePerKey(sum)
        | 'PrecisionsToDict' >> beam.combiners.ToDict())
    return (batches.pipeline
            | 'Seed' >> beam.Create([None])
            | 'Assemble' >> beam.Map(
                assemble_manifest, self._config,
                beam.pvalue.AsSingleton(counts),
                beam.pvalue.AsSingleton(instrument_pairs),
                beam.pvalue.AsSingleton(inputs[COUNTS]),
                beam.pvalue.AsSingleton(mfcc_statistics),
                self._representations,
                beam.pvalue.AsSingleton(representation_statistics),
                beam.pvalue.AsSingleton(precisions))
            | 'Write' >> beam.io.WriteToText(
                posixpath.join(self._directory, output.MANIFEST_DRAFT),
                shard_name_template='', num_shards=1))


def _split_counts(batch: FeaturizedBatch
                  ) -> Iterable[tuple[tuple[str, str, str], int]]:
  """Records per (split, family); notes read per (split, library)."""
  counts = collections.Counter(
      (note.split, _FAMILY, note.family) for note in batch.notes)
  counts.update((note.split, _LIBRARY, note.library)
                for i, note in enumerate(batch.notes)
                if note.library and not batch.copy_of(i))
  return counts.items()


def _instrument_pairs(batch: FeaturizedBatch
                      ) -> Iterable[tuple[str, str]]:
  return {(note.split, note.instrument_str) for note in batch.notes}


def assemble_manifest(_, config: JobConfig, counts: dict,
                      instrument_pairs: list,
                      outcome_counts: dict[outcomes.OutcomeKey, int],
                      statistics: dict | None,
                      representations: tuple = (),
                      representation_statistics: dict | None = None,
                      precisions: dict[str, int] | None = None) -> str:
  """The manifest's JSON text, from the pipeline's combined side inputs:
  {representation key: its statistics} and {precision: records} among
  them; `representations` are (representation, weights' SHA-256) pairs."""
  accounting = outcomes.Accounting.from_counts(
      outcome_counts, with_recordings=bool(config.recordings))
  manifest = manifest_lib.Manifest(
      project_version=nsynth_contracts.__version__,
      feature_params=config.params,
      vocabulary=config.vocabulary,
      splits=_split_summaries(config, counts, instrument_pairs, accounting),
      normalization=_normalization(config, statistics),
      filters=manifest_lib.Filters(config.kept_sources,
                                   config.dropped_families,
                                   config.max_notes_per_family),
      split_method=_split_record(config, instrument_pairs),
      accounting=accounting,
      audio_samples=config.params.clip_samples if config.keep_audio else None,
      compression=config.compression,
      augmentation=(manifest_lib.AugmentationRecord.from_json(
          {'split': config.train_split,
           **dataclass_json.to_json(config.augment)})
                    if config.augment.copies else None),
      representations=tuple(
          manifest_lib.RepresentationRecord(
              heard, sha256,
              _normalization(config,
                             (representation_statistics or {}).get(heard.key)))
          for heard, sha256 in representations),
      representation_precision=dict(sorted((precisions or {}).items())))
  return manifest.dumps()


def _normalization(config: JobConfig, statistics: dict | None
                   ) -> manifest_lib.Normalization | None:
  """The training split's statistics, if it had any records."""
  return (manifest_lib.Normalization(split=config.train_split, **statistics)
          if statistics else None)


def _split_summaries(config: JobConfig, counts: dict, instrument_pairs: list,
                     accounting: outcomes.Accounting
                     ) -> dict[str, manifest_lib.SplitSummary]:
  summaries = {}
  for split in config.output_splits:
    families = {f: counts.get((split, _FAMILY, f), 0)
                for f in config.vocabulary.families}
    summaries[split] = manifest_lib.SplitSummary(
        num_examples=sum(families.values()),
        families=families,
        num_instruments=sum(1 for s, _ in instrument_pairs if s == split),
        file_pattern=manifest_lib.shard_pattern(split, config.compression),
        num_augmented=accounting.augmented.get(split, 0),
        libraries={name: n for (s, kind, name), n in sorted(counts.items())
                   if s == split and kind == _LIBRARY})
  return summaries


def _split_record(config: JobConfig,
                  instrument_pairs: list) -> manifest_lib.SplitRecord:
  """The split method, and whether the output shares instruments between
  splits (measured here, not assumed)."""
  splits_of = {}
  for split, instrument in instrument_pairs:
    splits_of.setdefault(instrument, set()).add(split)
  shared = sum(1 for s in splits_of.values() if len(s) > 1)
  method = config.split_method
  return manifest_lib.SplitRecord(
      name=method.value,
      description=method.description,
      fractions=(tuple(config.split_fractions)
                 if method is not splits.SplitMethod.DIRECTORIES else None),
      inputs=tuple(d for d, _ in config.inputs),
      instruments_in_several_splits=shared,
      instrument_disjoint=not shared,
      holdout_library=config.holdout_library or None)
