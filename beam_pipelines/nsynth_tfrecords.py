r"""NSynth (examples.json + audio/*.wav) -> MFCC TFRecords and a manifest.

Usage:
  python -m beam_pipelines.nsynth_tfrecords \
      --input=nsynth-train,nsynth-valid,nsynth-test --output_dir=data/tfrecords \
      [--runner=DirectRunner --direct_num_workers=0 \
       --direct_running_mode=multi_processing] [other Beam options]

One --input per NSynth split directory (`nsynth-valid` -> split `valid`), or a
single directory split by --split_single_input. Writes
`<output_dir>/<split>-SSSSS-of-NNNNN.tfrecord.gz`, `manifest.json` and
`dead_letters/*.jsonl`. Every note is written, filtered or dead-lettered,
and a summary table says how many of each. Flags this module does not know
are Beam pipeline options (--runner, --setup_file, --project, ...).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import logging
import posixpath
import sys
from typing import Sequence

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.runners.portability.fn_api_runner import fn_runner

import nsynth_contracts
from beam_pipelines import examples_json
from beam_pipelines import output
from beam_pipelines import splits
from beam_pipelines import tfrecord_sink
from beam_pipelines import transforms
from nsynth_contracts import feature_params
from nsynth_contracts import labels
from nsynth_contracts import manifest as manifest_lib


class JobInputError(ValueError):
  """The job cannot start: the message names the input at fault."""


@dataclasses.dataclass(frozen=True)
class JobConfig:
  """Everything the job does, parsed from its flags."""
  inputs: tuple[tuple[str, str], ...]        # (split directory, split name)
  output_dir: str
  kept_sources: tuple[str, ...] = labels.DEFAULT_KEPT_SOURCES
  dropped_families: tuple[str, ...] = labels.DEFAULT_DROPPED_FAMILIES
  max_notes_per_family: int = 0              # 0: no cap
  split_method: splits.SplitMethod = splits.SplitMethod.DIRECTORIES
  split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
  keep_audio: bool = False
  num_shards: int = 0                        # 0: the runner decides
  compression_level: int = tfrecord_sink.DEFAULT_COMPRESSION_LEVEL
  batch_size: int = 64
  jit_compile: bool = True
  statistics_split: str = 'train'
  overwrite: bool = False
  params: feature_params.FeatureParams = feature_params.DEFAULT_PARAMS

  @property
  def vocabulary(self) -> labels.LabelVocabulary:
    return labels.LabelVocabulary.from_filters(self.kept_sources,
                                               self.dropped_families)

  @property
  def output_splits(self) -> tuple[str, ...]:
    if self.split_method is splits.SplitMethod.DIRECTORIES:
      return tuple(name for _, name in self.inputs)
    return splits.SPLIT_NAMES


def _csv(text: str) -> tuple[str, ...]:
  return tuple(v.strip() for v in text.split(',') if v.strip())


def _arg_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog='python -m beam_pipelines.nsynth_tfrecords',
      description=__doc__.split('\n')[0],
      epilog='Any other flag is passed to Beam as a pipeline option.')
  parser.add_argument(
      '--input', required=True,
      help='Comma-separated NSynth split directories (local or gs://), each '
           'holding examples.json and audio/. The split name comes from the '
           'directory: nsynth-train -> train.')
  parser.add_argument('--output_dir', required=True,
                      help='Where the TFRecords, manifest.json and '
                           'dead_letters/ go.')
  parser.add_argument('--overwrite', action='store_true',
                      help='Replace the dataset already in --output_dir.')
  parser.add_argument(
      '--sources', default=','.join(labels.DEFAULT_KEPT_SOURCES),
      help=f'Instrument sources to keep, of {",".join(labels.NSYNTH_SOURCES)}.')
  parser.add_argument(
      '--drop_families', default=','.join(labels.DEFAULT_DROPPED_FAMILIES),
      help='Instrument families to drop (empty keeps all).')
  parser.add_argument(
      '--max_notes_per_family', type=int, default=0,
      help='Keep at most this many notes per family in each split, chosen by '
           'a stable hash (0: keep all).')
  parser.add_argument(
      '--split_single_input', default='none',
      choices=['none', 'instrument', 'note'],
      help='With one --input directory: split it into train/valid/test by '
           'instrument (no instrument in two splits) or by note (the blog\'s '
           'random split, which leaks instruments).')
  parser.add_argument('--split_fractions', default='0.8,0.1,0.1',
                      help='train,valid,test fractions for '
                           '--split_single_input.')
  parser.add_argument('--keep_audio', action='store_true',
                      help='Also store each note\'s 4 s waveform.')
  parser.add_argument('--num_shards', type=int, default=0,
                      help='Shards per split (0: the runner decides, which '
                           'avoids shuffling the records).')
  parser.add_argument(
      '--compression_level', type=int,
      default=tfrecord_sink.DEFAULT_COMPRESSION_LEVEL,
      help=f'GZIP level of the TFRecords, ISA-L\'s '
           f'{tfrecord_sink.MIN_COMPRESSION_LEVEL} (fastest) to '
           f'{tfrecord_sink.MAX_COMPRESSION_LEVEL} (smallest, as small as '
           f'zlib -6).')
  parser.add_argument('--batch_size', type=int, default=64,
                      help='Notes per feature computation.')
  parser.add_argument('--jit_compile', default=True,
                      action=argparse.BooleanOptionalAction,
                      help='Compile the feature function with XLA in the '
                           'workers (--no-jit_compile to turn off).')
  return parser


def parse_args(argv: Sequence[str] | None = None
               ) -> tuple[JobConfig, list[str]]:
  """Job flags -> JobConfig; the flags it does not know are for Beam.

  Bad values exit (argparse's way) with a message naming the flag.
  """
  parser = _arg_parser()
  args, beam_args = parser.parse_known_args(argv)
  split_dirs = _csv(args.input)
  if not split_dirs:
    parser.error('--input names no directory')
  method = (splits.SplitMethod.DIRECTORIES
            if args.split_single_input == 'none'
            else splits.SplitMethod(args.split_single_input))
  if method is not splits.SplitMethod.DIRECTORIES and len(split_dirs) != 1:
    parser.error(f'--split_single_input={args.split_single_input} needs '
                 f'exactly one --input directory, got {len(split_dirs)}')
  try:
    inputs = tuple((d, splits.split_name_from_dir(d)) for d in split_dirs)
    fractions = splits.parse_fractions(args.split_fractions)
  except ValueError as e:
    parser.error(str(e))
  names = [name for _, name in inputs]
  if method is splits.SplitMethod.DIRECTORIES and len(set(names)) != len(names):
    parser.error(f'--input directories give repeated split names {names}')
  for flag, value, low, high in [
      ('--max_notes_per_family', args.max_notes_per_family, 0, None),
      ('--num_shards', args.num_shards, 0, None),
      ('--compression_level', args.compression_level,
       tfrecord_sink.MIN_COMPRESSION_LEVEL,
       tfrecord_sink.MAX_COMPRESSION_LEVEL),
      ('--batch_size', args.batch_size, 1, None)]:
    if value < low or (high is not None and value > high):
      parser.error(f'{flag}={value} must be >= {low}' +
                   (f' and <= {high}' if high is not None else ''))
  config = JobConfig(
      inputs=inputs,
      output_dir=args.output_dir.rstrip('/'),
      kept_sources=_csv(args.sources),
      dropped_families=_csv(args.drop_families),
      max_notes_per_family=args.max_notes_per_family,
      split_method=method,
      split_fractions=fractions,
      keep_audio=args.keep_audio,
      num_shards=args.num_shards,
      compression_level=args.compression_level,
      batch_size=args.batch_size,
      jit_compile=args.jit_compile,
      overwrite=args.overwrite)
  try:
    config.vocabulary  # pylint: disable=pointless-statement
  except ValueError as e:
    parser.error(f'--sources/--drop_families: {e}')
  return config, beam_args


def check_inputs(config: JobConfig) -> dict[str, int]:
  """Fails fast, naming the input, before any pipeline work or output.

  Returns:
    Entries per input directory's examples.json.
  """
  sizes = {}
  for split_dir, _ in config.inputs:
    if not FileSystems.exists(posixpath.join(split_dir,
                                             examples_json.EXAMPLES_JSON)):
      what = ('does not exist' if not FileSystems.exists(split_dir)
              else f'has no {examples_json.EXAMPLES_JSON}')
      raise JobInputError(f'Input directory {split_dir} {what}')
    try:
      sizes[split_dir] = len(transforms.read_examples_json(split_dir))
    except examples_json.ExamplesJsonError as e:
      raise JobInputError(str(e)) from e
  return sizes


def _split_index(batch: transforms.FeaturizedBatch, _, split_names):
  return split_names.index(batch.split)


def _family_counts(batch: transforms.FeaturizedBatch):
  return collections.Counter(
      (note.split, note.family) for note in batch.notes).items()


def _instrument_pairs(batch: transforms.FeaturizedBatch):
  return {(note.split, note.instrument_str) for note in batch.notes}


def assemble_manifest(_, config: JobConfig, family_counts: dict,
                      instrument_pairs: list, accounting: dict,
                      statistics: dict | None) -> str:
  """The manifest's JSON text, from the pipeline's combined side inputs."""
  split_summaries = {}
  for split in config.output_splits:
    families = {f: family_counts.get((split, f), 0)
                for f in config.vocabulary.families}
    split_summaries[split] = manifest_lib.SplitSummary(
        num_examples=sum(families.values()),
        families=families,
        num_instruments=sum(1 for s, _ in instrument_pairs if s == split),
        file_pattern=manifest_lib.shard_pattern(split))
  splits_of = {}
  for split, instrument in instrument_pairs:
    splits_of.setdefault(instrument, set()).add(split)
  shared = sorted(i for i, s in splits_of.items() if len(s) > 1)
  method = config.split_method
  filtered = {k.split('/', 1)[1]: v for k, v in sorted(accounting.items())
              if k.startswith('filtered/')}
  dead = {k.split('/', 1)[1]: v for k, v in sorted(accounting.items())
          if k.startswith('dead_letter/')}
  written = {k.split('/', 1)[1]: v for k, v in sorted(accounting.items())
             if k.startswith('written/')}
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
      },
      accounting={
          'read': sum(accounting.values()),
          'written': written,
          'filtered': filtered,
          'dead_lettered': dead,
      },
      audio_samples=config.params.clip_samples if config.keep_audio else None)
  return manifest.dumps()


def build_pipeline(pipeline: beam.Pipeline, config: JobConfig,
                   staging_dir: str) -> None:
  """Adds the whole job to `pipeline`, writing into `staging_dir`."""
  vocabulary = config.vocabulary
  read = [pipeline | f'Read[{name}]' >> transforms.ReadNSynthSplit(d, name)
          for d, name in config.inputs]
  notes = ([r[transforms.NOTES] for r in read]
           | 'AllNotes' >> beam.Flatten()
           | 'AssignSplit' >> beam.Map(transforms.reassign_split,
                                       config.split_method,
                                       config.split_fractions))
  kept = notes | 'Filter' >> beam.FlatMap(
      transforms.filter_note, config.kept_sources,
      vocabulary).with_outputs(transforms.FILTERED, main=transforms.NOTES)
  filtered = [kept[transforms.FILTERED]]
  kept_notes = kept[transforms.NOTES]
  if config.max_notes_per_family:
    capped = kept_notes | 'Cap' >> transforms.CapPerFamily(
        config.max_notes_per_family)
    kept_notes = capped[transforms.NOTES]
    filtered.append(capped[transforms.FILTERED])
  featurized = kept_notes | 'Featurize' >> transforms.FeaturizeNotes(
      config.params, config.keep_audio, config.batch_size, config.jit_compile)
  # Batches of notes from here on, each of one split.
  batches = featurized[transforms.NOTES] | 'PerSplit' >> beam.FlatMap(
      transforms.FeaturizedBatch.per_split)

  # The records, one set of shards per split.
  names = list(config.output_splits)
  by_split = batches | 'BySplit' >> beam.Partition(_split_index, len(names),
                                                   names)
  for name, split_batches in zip(names, by_split):
    _ = (split_batches
         | f'Serialize[{name}]' >> beam.FlatMap(
             transforms.to_serialized_examples, vocabulary)
         | f'Write[{name}]' >> tfrecord_sink.WriteToGzipTFRecord(
             posixpath.join(staging_dir, manifest_lib.shard_prefix(name)),
             manifest_lib.SHARD_SUFFIX, config.num_shards,
             config.compression_level))

  # Dead letters.
  dead_letters = ([r[transforms.DEAD_LETTERS] for r in read] +
                  [featurized[transforms.DEAD_LETTERS]]
                  ) | 'AllDeadLetters' >> beam.Flatten()
  _ = (dead_letters
       | 'DeadLetterJson' >> beam.Map(transforms.DeadLetter.to_json_line)
       | 'WriteDeadLetters' >> beam.io.WriteToText(
           posixpath.join(staging_dir, output.DEAD_LETTERS_PREFIX),
           file_name_suffix='.jsonl'))

  # The manifest, from combiners over what was actually written.
  outcomes = {'written': batches, 'dead_lettered': dead_letters}
  outcomes.update({f'filtered{i}': f for i, f in enumerate(filtered)})
  accounting = outcomes | 'Account' >> transforms.CountOutcomes()
  family_counts = (
      batches
      | 'SplitFamily' >> beam.FlatMap(_family_counts)
      | 'CountFamilies' >> beam.CombinePerKey(sum)
      | 'FamiliesToDict' >> beam.combiners.ToDict())
  instrument_pairs = (
      batches
      | 'SplitInstrument' >> beam.FlatMap(_instrument_pairs)
      | 'DistinctInstruments' >> beam.Distinct()
      | 'InstrumentsToList' >> beam.combiners.ToList())
  statistics = (
      batches
      | 'StatisticsSplit' >> beam.Filter(
          lambda b, split: b.split == split, config.statistics_split)
      | 'Mfccs' >> beam.Map(lambda b: b.mfccs)
      | 'Statistics' >> beam.CombineGlobally(transforms.MfccStatisticsFn()))
  _ = (pipeline
       | 'ManifestSeed' >> beam.Create([None])
       | 'Manifest' >> beam.Map(
           assemble_manifest, config,
           beam.pvalue.AsSingleton(family_counts),
           beam.pvalue.AsSingleton(instrument_pairs),
           beam.pvalue.AsSingleton(accounting),
           beam.pvalue.AsSingleton(statistics))
       | 'WriteManifest' >> beam.io.WriteToText(
           posixpath.join(staging_dir, manifest_lib.MANIFEST_FILENAME),
           shard_name_template='', num_shards=1))


def local_runner_for(options: PipelineOptions):
  """The DirectRunner's in-process engine when the DirectRunner is asked for.

  Since Beam 2.63 the DirectRunner first tries Prism, a Go binary it downloads
  on first use; offline that costs a failed download before it falls back,
  and Prism ignores --direct_num_workers. The FnApiRunner is what the
  DirectRunner falls back to, and it honours --direct_num_workers and
  --direct_running_mode. Other runners (Dataflow, Flink, Spark, Prism) are
  left to Beam.
  """
  runner = options.view_as(StandardOptions).runner
  if runner in (None, 'DirectRunner', 'direct'):
    return fn_runner.FnApiRunner()
  return None


@dataclasses.dataclass(frozen=True)
class JobResult:
  manifest: manifest_lib.Manifest
  counters: dict[str, int]   # Beam counters of the 'nsynth' namespace
  files: list[str]


def _counters(result) -> dict[str, int]:
  query = result.metrics().query(
      MetricsFilter().with_namespace(transforms.METRICS_NAMESPACE))
  totals = {}
  for counter in query['counters']:  # One result per step that counts it.
    name = counter.key.metric.name
    totals[name] = totals.get(name, 0) + counter.committed
  return totals


def run_job(config: JobConfig, beam_args: Sequence[str] = ()) -> JobResult:
  """Checks inputs, runs the pipeline into staging, then commits the output.

  Raises:
    JobInputError: an input directory or examples.json is unusable.
    output.OutputDirNotEmptyError: without overwrite.
  """
  sizes = check_inputs(config)
  output.check_output_dir(config.output_dir, config.overwrite)
  logging.info('Reading %d notes from %s', sum(sizes.values()),
               ', '.join(d for d, _ in config.inputs))
  staging_dir = output.new_staging_dir(config.output_dir)
  try:
    options = PipelineOptions(list(beam_args))
    pipeline = beam.Pipeline(runner=local_runner_for(options), options=options)
    build_pipeline(pipeline, config, staging_dir)
    result = pipeline.run()
    result.wait_until_finish()
    with FileSystems.open(posixpath.join(
        staging_dir, manifest_lib.MANIFEST_FILENAME)) as f:
      manifest = manifest_lib.Manifest.from_json(json.loads(f.read()))
    _check_accounting(manifest, sum(sizes.values()))
    files = output.commit(staging_dir, config.output_dir)
  except BaseException:
    output.discard(staging_dir)
    raise
  return JobResult(manifest, _counters(result), files)


def _check_accounting(manifest: manifest_lib.Manifest, notes_read: int) -> None:
  accounted = manifest.accounting['read']
  if accounted != notes_read:
    raise RuntimeError(
        f'{notes_read} notes were read but {accounted} are accounted for as '
        f'written, filtered or dead-lettered; nothing was committed')


def summary_table(job: JobResult, output_dir: str) -> str:
  """What happened to every note, for people."""
  accounting = job.manifest.accounting
  rows = [('read', 'examples.json', accounting['read'])]
  rows += [('written', k, v) for k, v in accounting['written'].items()]
  rows += [('filtered', f'by {k}', v) for k, v in accounting['filtered'].items()]
  rows += [('dead-lettered', k, v)
           for k, v in accounting['dead_lettered'].items()]
  lines = [f'NSynth -> TFRecords: {output_dir}',
           f'  {"outcome":<14} {"detail":<22} {"notes":>8}',
           f'  {"-" * 14} {"-" * 22} {"-" * 8}']
  lines += [f'  {a:<14} {b:<22} {c:>8}' for a, b, c in rows]
  total = (sum(accounting['written'].values()) +
           sum(accounting['filtered'].values()) +
           sum(accounting['dead_lettered'].values()))
  lines.append(f'  every note accounted for: {total} of {accounting["read"]}')
  vocabulary = job.manifest.vocabulary
  for split, summary in job.manifest.splits.items():
    lines.append(f'  {split}: {summary.num_examples} examples from '
                 f'{summary.num_instruments} instruments; ' + ', '.join(
                     f'{f} {summary.families[f]}' for f in vocabulary.families))
  lines.append(f'  split method: {job.manifest.split_method["name"]}; '
               f'instrument-disjoint: '
               f'{job.manifest.split_method["instrument_disjoint"]}')
  if accounting['dead_lettered']:
    lines.append(f'  dead letters: '
                 f'{posixpath.join(output_dir, output.DEAD_LETTERS_DIR)}/')
  return '\n'.join(lines)


def run(argv: Sequence[str] | None = None) -> JobResult:
  """Parses flags and runs the job; the library entry for tests and users."""
  config, beam_args = parse_args(argv)
  job = run_job(config, beam_args)
  print(summary_table(job, config.output_dir))
  return job


def main() -> None:
  """Console entry point: errors in the inputs end with a one-line message."""
  logging.getLogger().setLevel(logging.INFO)
  try:
    run(sys.argv[1:])
  except (JobInputError, output.OutputDirNotEmptyError) as e:
    sys.exit(f'error: {e}')


if __name__ == '__main__':
  main()
