"""The Beam job's graph: notes in; records, dead letters and manifest out.

`build_pipeline` wires the composite transforms of the other modules, each
of which can be run on its own with TestPipeline:

  NSynth split dirs -> SelectNotes -> FeaturizeNotes ---+--> WriteSplits
  --recordings dirs -> WindowRecordings ----------------+--> SummarizeDataset
  every stage's dead letters ----------------------------> WriteDeadLetters
"""

import posixpath
from collections.abc import Sequence

import apache_beam as beam

from beam_pipelines import dataset_summary
from beam_pipelines import output
from beam_pipelines import recordings
from beam_pipelines import tfrecord_sink
from beam_pipelines import transforms
from beam_pipelines.job_config import JobConfig
from nsynth_contracts import manifest as manifest_lib


def build_pipeline(pipeline: beam.Pipeline, config: JobConfig,
                   staging_dir: str) -> None:
  """Adds the whole job to `pipeline`, writing into `staging_dir`."""
  notes = pipeline | 'Notes' >> SelectNotes(config)
  featurized = notes[transforms.NOTES] | 'Featurize' >> (
      transforms.FeaturizeNotes(
          config.params, config.keep_audio, config.batch_size,
          config.jit_compile, config.augment, config.statistics_split))
  batches = [featurized[transforms.NOTES]]
  dead_letters = [notes[transforms.DEAD_LETTERS],
                  featurized[transforms.DEAD_LETTERS]]
  outcomes = {'filtered': notes[transforms.FILTERED]}
  if config.recordings:
    windowed = pipeline | 'Recordings' >> recordings.WindowRecordings(
        [d for d, _ in config.recordings], config.kept_sources,
        config.vocabulary, config.params, config.windows, config.keep_audio,
        config.batch_size, config.jit_compile, config.augment,
        config.statistics_split)
    batches.append(windowed[transforms.NOTES])
    dead_letters.append(windowed[transforms.DEAD_LETTERS])
    outcomes.update(recordings_filtered=windowed[transforms.FILTERED],
                    recordings_windowed=windowed[recordings.OUTCOMES])
  # Batches of notes (and windows) from here on, each of one split.
  batches = (batches
             | 'AllBatches' >> beam.Flatten()
             | 'PerSplit' >> beam.FlatMap(transforms.FeaturizedBatch.per_split))
  dead_letters = dead_letters | 'AllDeadLetters' >> beam.Flatten()
  _ = batches | 'Records' >> WriteSplits(config, staging_dir)
  _ = dead_letters | 'DeadLetters' >> WriteDeadLetters(staging_dir)
  outcomes.update(written=batches, dead_lettered=dead_letters)
  accounting = outcomes | 'Account' >> transforms.CountOutcomes()
  _ = ({dataset_summary.BATCHES: batches,
        dataset_summary.ACCOUNTING: accounting}
       | 'Manifest' >> dataset_summary.WriteManifest(config, staging_dir))


class SelectNotes(beam.PTransform):
  """The input directories -> the notes to featurise (NOTES), each in its
  split; the notes left out (FILTERED: by source, family, cap or holdout),
  and the entries that are no usable note (DEAD_LETTERS)."""

  def __init__(self, config: JobConfig):
    super().__init__()
    self._config = config

  def expand(self, pbegin):
    config = self._config
    read = [pbegin | f'Read[{name}]' >> transforms.ReadNSynthSplit(d, name)
            for d, name in config.inputs]
    notes = ([r[transforms.NOTES] for r in read]
             | 'AllNotes' >> beam.Flatten()
             | 'AssignSplit' >> beam.Map(transforms.reassign_split,
                                         config.split_method,
                                         config.split_fractions,
                                         config.holdout_library))
    kept = notes | 'Filter' >> beam.FlatMap(
        transforms.filter_note, config.kept_sources,
        config.vocabulary).with_outputs(transforms.FILTERED,
                                        main=transforms.NOTES)
    filtered = [kept[transforms.FILTERED]]
    kept_notes = kept[transforms.NOTES]
    if config.max_notes_per_family:
      capped = kept_notes | 'Cap' >> transforms.CapPerFamily(
          config.max_notes_per_family)
      kept_notes = capped[transforms.NOTES]
      filtered.append(capped[transforms.FILTERED])
    return {
        transforms.NOTES: kept_notes,
        transforms.FILTERED: filtered | 'AllFiltered' >> beam.Flatten(),
        transforms.DEAD_LETTERS: ([r[transforms.DEAD_LETTERS] for r in read]
                                  | 'ReadDeadLetters' >> beam.Flatten()),
    }


def _split_index(batch: transforms.FeaturizedBatch, _: int,
                 split_names: Sequence[str]) -> int:
  return split_names.index(batch.split)


class WriteSplits(beam.PTransform):
  """FeaturizedBatches -> one set of TFRecord shards per split."""

  def __init__(self, config: JobConfig, staging_dir: str):
    super().__init__()
    self._config = config
    self._staging_dir = staging_dir

  def expand(self, batches):
    config = self._config
    names = list(config.output_splits)
    by_split = batches | 'BySplit' >> beam.Partition(_split_index, len(names),
                                                     names)
    level = (config.compression_level
             if config.compression == manifest_lib.GZIP else None)
    for name, split_batches in zip(names, by_split):
      _ = (split_batches
           | f'Serialize[{name}]' >> beam.FlatMap(
               transforms.to_serialized_examples, config.vocabulary)
           | f'Write[{name}]' >> tfrecord_sink.WriteToTFRecord(
               posixpath.join(self._staging_dir,
                              manifest_lib.shard_prefix(name)),
               config.shard_suffix, config.num_shards, level))


class WriteDeadLetters(beam.PTransform):
  """DeadLetters -> one JSON line each, in dead_letters-*.jsonl."""

  def __init__(self, staging_dir: str):
    super().__init__()
    self._staging_dir = staging_dir

  def expand(self, dead_letters):
    return (dead_letters
            | 'Json' >> beam.Map(transforms.DeadLetter.to_json_line)
            | 'Write' >> beam.io.WriteToText(
                posixpath.join(self._staging_dir, output.DEAD_LETTERS_PREFIX),
                file_name_suffix='.jsonl'))
