r"""NSynth (examples.json + audio/*.wav) -> MFCC TFRecords and a manifest.

Usage:
  nsynth-tfrecords \
      --input=nsynth-train,nsynth-valid,nsynth-test \
      --output_dir=data/tfrecords \
      [--runner=DirectRunner --direct_num_workers=0 \
       --direct_running_mode=multi_threading] [other Beam options]

One --input per NSynth split directory (`nsynth-valid` -> split `valid`), or a
single directory split by --split_single_input. Writes
`<output_dir>/<split>-SSSSS-of-NNNNN.tfrecord.gz`, `manifest.json` and
`dead_letters/*.jsonl`. Every note is written, filtered or dead-lettered,
and a summary table says how many of each. Flags this job does not define
are Beam pipeline options (--runner, --setup_file, --project, ...), passed
to Beam as Beam documents.
"""

import collections
import dataclasses
import errno
import json
import logging
import posixpath
from collections.abc import Iterable
from collections.abc import Sequence

# First: it quiets what Beam says at import.
from nsynth_contracts import cli

# isort: split

import apache_beam as beam
from absl import flags
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.runners.portability.fn_api_runner import fn_runner

import nsynth_contracts
from beam_pipelines import augmentation
from beam_pipelines import commit
from beam_pipelines import examples_json
from beam_pipelines import output
from beam_pipelines import recordings
from beam_pipelines import splits
from beam_pipelines import tfds_metadata
from beam_pipelines import tfrecord_sink
from beam_pipelines import transforms
from nsynth_contracts import feature_params
from nsynth_contracts import labels
from nsynth_contracts import manifest as manifest_lib
from nsynth_contracts import windows as windows_lib


class JobInputError(cli.UserError):
  """The job cannot start: the message names the input at fault."""


@dataclasses.dataclass(frozen=True)
class JobConfig:
  """Everything the job does; the flags take their defaults from here."""
  inputs: tuple[tuple[str, str], ...]        # (split directory, split name)
  output_dir: str
  kept_sources: tuple[str, ...] = labels.DEFAULT_KEPT_SOURCES
  dropped_families: tuple[str, ...] = labels.DEFAULT_DROPPED_FAMILIES
  max_notes_per_family: int = 0              # 0: no cap
  split_method: splits.SplitMethod = splits.SplitMethod.DIRECTORIES
  split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
  keep_audio: bool = False
  num_shards: int = 0                        # 0: the runner decides
  compression: str = manifest_lib.GZIP      # or NONE: TFDS-loadable
  compression_level: int = tfrecord_sink.DEFAULT_COMPRESSION_LEVEL
  batch_size: int = 64
  jit_compile: bool = True
  statistics_split: str = 'train'
  holdout_library: str = ''                  # leave-one-library-out
  recordings: tuple[tuple[str, str], ...] = ()   # (directory, split name)
  windows: windows_lib.WindowParams = windows_lib.DEFAULT_WINDOWS
  augment: augmentation.AugmentationConfig = augmentation.AugmentationConfig()
  overwrite: bool = False
  params: feature_params.FeatureParams = feature_params.DEFAULT_PARAMS

  @property
  def vocabulary(self) -> labels.LabelVocabulary:
    return labels.LabelVocabulary.from_filters(self.kept_sources,
                                               self.dropped_families)

  @property
  def shard_suffix(self) -> str:
    return manifest_lib.SHARD_SUFFIXES[self.compression]

  @property
  def output_splits(self) -> tuple[str, ...]:
    names = (tuple(name for _, name in self.inputs)
             if self.split_method is splits.SplitMethod.DIRECTORIES
             else splits.SPLIT_NAMES)
    return names + tuple(dict.fromkeys(
        split for _, split in self.recordings if split not in names))


_DEFAULTS = JobConfig(inputs=(), output_dir='')


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """The job's own flags; every other flag is a Beam pipeline option."""
  fv = {'flag_values': flag_values}
  flags.DEFINE_list(
      'input', None, 'NSynth split directories (local or gs://), each '
      'holding examples.json and audio/. The split name comes from the '
      'directory: nsynth-train -> train.', required=True, **fv)
  flags.DEFINE_string('output_dir', None, 'Where the TFRecords, '
                      'manifest.json and dead_letters/ go.', required=True,
                      **fv)
  flags.DEFINE_boolean(
      'overwrite', _DEFAULTS.overwrite, 'Replace the dataset a previous run '
      'wrote in --output_dir (the files its manifest lists, nothing else).',
      **fv)
  flags.DEFINE_list('sources', list(_DEFAULTS.kept_sources),
                    f'Instrument sources to keep, of '
                    f'{",".join(labels.NSYNTH_SOURCES)}.', **fv)
  flags.DEFINE_list('drop_families', list(_DEFAULTS.dropped_families),
                    'Instrument families to drop (empty keeps all).', **fv)
  flags.DEFINE_integer(
      'max_notes_per_family', _DEFAULTS.max_notes_per_family, 'Keep at most '
      'this many notes per family in each split, chosen by a stable hash (0: '
      'keep all).', lower_bound=0, **fv)
  flags.DEFINE_enum(
      'split_single_input', 'none', ['none', 'instrument', 'note'],
      'With one --input directory: split it into train/valid/test by '
      'instrument (no instrument in two splits) or by note (the blog\'s '
      'random split, which leaks instruments).', **fv)
  flags.DEFINE_string(
      'holdout_library', _DEFAULTS.holdout_library, 'Leave one sample library '
      'out (the demo data\'s `library` field): test is its valid and test '
      'instruments, train and valid are the other libraries\' train and '
      'valid directories. Holding out programs too matters: the General MIDI '
      'libraries share many of their samples.', **fv)
  flags.DEFINE_integer(
      'augment_copies', _DEFAULTS.augment.copies, 'Extra versions of each '
      'training note, each played through a random recording chain (gain, '
      'EQ and tilt, speed, room reverb, band limits, noise; see '
      'beam_pipelines/augmentation.py). Train split only.', lower_bound=0,
      **fv)
  flags.DEFINE_integer('augment_seed', _DEFAULTS.augment.seed, 'Seeds the '
                       'augmentation: the same seed writes the same records.',
                       **fv)
  flags.DEFINE_list(
      'recordings', [], 'Directories of recordings of any length (WAV, FLAC, '
      'OGG, MP3) with a labels.json, named <anything>-<split> (e.g. '
      'phrases-train): each is cut into 4 s windows, every '
      '--window_hop_seconds, and each sounding window is written to that '
      'split (see beam_pipelines/recordings.py).', **fv)
  flags.DEFINE_float('window_hop_seconds', _DEFAULTS.windows.hop_seconds,
                     'Seconds between the starts of windows of '
                     '--recordings.', lower_bound=0.1, **fv)
  flags.DEFINE_list('split_fractions',
                    [str(f) for f in _DEFAULTS.split_fractions],
                    'train,valid,test fractions for --split_single_input.',
                    **fv)
  flags.DEFINE_boolean('keep_audio', _DEFAULTS.keep_audio,
                       'Also store each note\'s 4 s waveform.', **fv)
  flags.DEFINE_integer('num_shards', _DEFAULTS.num_shards, 'Shards per split '
                       '(0: the runner decides, which avoids shuffling the '
                       'records).', lower_bound=0, **fv)
  flags.DEFINE_enum(
      'compression', _DEFAULTS.compression.lower(), ['gzip', 'none'],
      'gzip: <split>-*.tfrecord.gz (smaller). none: plain <split>-*.tfrecord '
      'plus the dataset_info.json and features.json that TensorFlow Datasets '
      'reads, so that tfds.builder_from_directory(--output_dir) loads the '
      'output (TFDS cannot read GZIP TFRecords).', **fv)
  flags.DEFINE_integer(
      'compression_level', _DEFAULTS.compression_level,
      f'GZIP level of the TFRecords, ISA-L\'s '
      f'{tfrecord_sink.MIN_COMPRESSION_LEVEL} (fastest) to '
      f'{tfrecord_sink.MAX_COMPRESSION_LEVEL} (smallest, as small as zlib -6).',
      lower_bound=tfrecord_sink.MIN_COMPRESSION_LEVEL,
      upper_bound=tfrecord_sink.MAX_COMPRESSION_LEVEL, **fv)
  flags.DEFINE_integer(
      'num_mfcc', _DEFAULTS.params.num_mfcc,
      'MFCCs per frame (librosa\'s n_mfcc), 1 to the '
      f'{_DEFAULTS.params.num_mel_bands} mel bands. The blog used 20; more '
      'keep more of the spectral envelope (BUILD_NOTES.md, issue 9).',
      lower_bound=1, upper_bound=_DEFAULTS.params.num_mel_bands, **fv)
  flags.DEFINE_integer('batch_size', _DEFAULTS.batch_size,
                       'Notes per feature computation.', lower_bound=1, **fv)
  flags.DEFINE_boolean('jit_compile', _DEFAULTS.jit_compile, 'Compile the '
                       'feature function with XLA in the workers '
                       '(--nojit_compile to turn off).', **fv)


def config_from_flags(values: flags.FlagValues) -> JobConfig:
  """Parsed flags -> JobConfig.

  Raises:
    flags.ValidationError: naming the flag whose value cannot work.
  """
  split_dirs = [d for d in values.input if d]
  if not split_dirs:
    raise flags.ValidationError('--input names no directory')
  method = (splits.SplitMethod.DIRECTORIES
            if values.split_single_input == 'none'
            else splits.SplitMethod(values.split_single_input))
  if values.holdout_library:
    if method is not splits.SplitMethod.DIRECTORIES:
      raise flags.ValidationError(
          '--holdout_library splits by library; it cannot be combined with '
          '--split_single_input')
    method = splits.SplitMethod.LIBRARY
  elif method is not splits.SplitMethod.DIRECTORIES and len(split_dirs) != 1:
    raise flags.ValidationError(
        f'--split_single_input={values.split_single_input} needs exactly one '
        f'--input directory, got {len(split_dirs)}')
  try:
    inputs = tuple((d, splits.split_name_from_dir(d)) for d in split_dirs)
    fractions = splits.parse_fractions(','.join(values.split_fractions))
  except ValueError as e:
    raise flags.ValidationError(str(e)) from None
  try:
    recording_dirs = tuple((d, recordings.split_of(d))
                           for d in values.recordings if d)
  except recordings.RecordingsError as e:
    raise flags.ValidationError(str(e)) from None
  names = [name for _, name in inputs]
  if method is splits.SplitMethod.LIBRARY and not {'train', 'valid'} <= set(
      names):
    raise flags.ValidationError(
        '--holdout_library needs train and valid input directories (and '
        f'test); the inputs give splits {names}')
  if method is not splits.SplitMethod.NOTE and method is not (
      splits.SplitMethod.INSTRUMENT) and len(set(names)) != len(names):
    raise flags.ValidationError(
        f'--input directories give repeated split names {names}')
  config = JobConfig(
      inputs=inputs,
      output_dir=values.output_dir.rstrip('/') or values.output_dir,
      kept_sources=tuple(values.sources),
      dropped_families=tuple(values.drop_families),
      max_notes_per_family=values.max_notes_per_family,
      split_method=method,
      split_fractions=fractions,
      keep_audio=values.keep_audio,
      num_shards=values.num_shards,
      compression=values.compression.upper(),
      compression_level=values.compression_level,
      batch_size=values.batch_size,
      jit_compile=values.jit_compile,
      holdout_library=values.holdout_library,
      recordings=recording_dirs,
      windows=dataclasses.replace(_DEFAULTS.windows,
                                  hop_seconds=values.window_hop_seconds),
      augment=augmentation.AugmentationConfig(copies=values.augment_copies,
                                              seed=values.augment_seed),
      overwrite=values.overwrite,
      params=dataclasses.replace(_DEFAULTS.params, num_mfcc=values.num_mfcc))
  try:
    _ = config.vocabulary
  except ValueError as e:
    raise flags.ValidationError(f'--sources/--drop_families: {e}') from None
  return config


def parse_args(argv: Sequence[str]) -> tuple[JobConfig, list[str]]:
  """Job flags -> JobConfig; the flags it does not know are for Beam.

  Parses into a fresh FlagValues, so that a process may call it many times.

  Raises:
    flags.Error: a bad or missing flag, named.
  """
  values = flags.FlagValues()
  define_flags(values)
  beam_args = values(['nsynth-tfrecords'] + list(argv), known_only=True)[1:]
  return config_from_flags(values), beam_args


def check_inputs(config: JobConfig) -> dict[str, int]:
  """Fails fast, naming the input, before any pipeline work or output.

  Returns:
    Entries per input directory's examples.json, and per --recordings
    directory's labels.json.
  """
  sizes, libraries = {}, set()
  for flag, path in ([('--input', d) for d, _ in config.inputs] +
                     [('--recordings', d) for d, _ in config.recordings] +
                     [('--output_dir', config.output_dir)]):
    _check_file_system(flag, path)
  for split_dir, _ in config.inputs:
    if not FileSystems.exists(posixpath.join(split_dir,
                                             examples_json.EXAMPLES_JSON)):
      what = ('does not exist' if not FileSystems.exists(split_dir)
              else f'has no {examples_json.EXAMPLES_JSON}')
      raise JobInputError(f'Input directory {split_dir} {what}')
    try:
      entries = transforms.read_examples_json(split_dir)
    except examples_json.ExamplesJsonError as e:
      raise JobInputError(str(e)) from e
    sizes[split_dir] = len(entries)
    libraries |= {_library_of(entry.value) for entry in entries}
  for directory, _ in config.recordings:
    try:
      sizes[directory] = len(recordings.read_labels(directory))
    except recordings.RecordingsError as e:
      raise JobInputError(str(e)) from None
  if config.holdout_library and config.holdout_library not in libraries:
    named = sorted(libraries - {''}) or 'none'
    raise JobInputError(
        f'--holdout_library={config.holdout_library} is not a library of the '
        f'inputs; their examples.json name {named}')
  return sizes


def _check_file_system(flag: str, path: str) -> None:
  """Refuses a path whose file system this installation cannot reach: Beam
  knows gs:// only with apache-beam[gcp] installed, and says so in a page."""
  try:
    FileSystems.get_filesystem(path)
  except ValueError:
    scheme = FileSystems.get_scheme(path)
    raise JobInputError(
        f'{flag} {path}: this installation has no file system for '
        f'{scheme}:// paths (Beam reads gs:// only with apache-beam[gcp] '
        f'installed; see BUILD_NOTES.md on cloud storage)') from None


def _library_of(entry) -> str:
  library = examples_json.member(entry, 'library')
  return library if isinstance(library, str) else ''


def _split_index(batch: transforms.FeaturizedBatch, _: int,
                 split_names: Sequence[str]) -> int:
  return split_names.index(batch.split)


def _family_counts(batch: transforms.FeaturizedBatch
                   ) -> Iterable[tuple[tuple[str, str], int]]:
  """(split, family) -> records; (split, 'library:<name>') -> notes read."""
  counts = collections.Counter(
      (note.split, note.family) for note in batch.notes)
  counts.update((note.split, f'library:{note.library}')
                for i, note in enumerate(batch.notes)
                if note.library and not batch.copy_of(i))
  return counts.items()


def _instrument_pairs(batch: transforms.FeaturizedBatch
                      ) -> Iterable[tuple[str, str]]:
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
        file_pattern=manifest_lib.shard_pattern(split, config.compression),
        num_augmented=accounting.get(f'augmented/{split}', 0),
        libraries={key.split(':', 1)[1]: n for (s, key), n in sorted(
            family_counts.items()) if s == split and key.startswith(
                'library:')})
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
                                       config.split_fractions,
                                       config.holdout_library))
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
      config.params, config.keep_audio, config.batch_size, config.jit_compile,
      config.augment, config.statistics_split)
  all_batches = [featurized[transforms.NOTES]]
  recording_outcomes = {}
  if config.recordings:
    windowed = pipeline | 'Recordings' >> recordings.WindowRecordings(
        [d for d, _ in config.recordings], config.kept_sources, vocabulary,
        config.params, config.windows, config.keep_audio, config.batch_size,
        config.jit_compile, config.augment, config.statistics_split)
    all_batches.append(windowed[transforms.NOTES])
    recording_outcomes = {
        'recordings_filtered': windowed[transforms.FILTERED],
        'recordings_dead': windowed[transforms.DEAD_LETTERS],
        'recordings_windowed': windowed[recordings.OUTCOMES]}
  # Batches of notes (and windows) from here on, each of one split.
  batches = (all_batches
             | 'AllBatches' >> beam.Flatten()
             | 'PerSplit' >> beam.FlatMap(transforms.FeaturizedBatch.per_split))

  # The records, one set of shards per split.
  names = list(config.output_splits)
  by_split = batches | 'BySplit' >> beam.Partition(_split_index, len(names),
                                                   names)
  for name, split_batches in zip(names, by_split):
    _ = (split_batches
         | f'Serialize[{name}]' >> beam.FlatMap(
             transforms.to_serialized_examples, vocabulary)
         | f'Write[{name}]' >> tfrecord_sink.WriteToTFRecord(
             posixpath.join(staging_dir, manifest_lib.shard_prefix(name)),
             config.shard_suffix, config.num_shards,
             config.compression_level
             if config.compression == manifest_lib.GZIP else None))

  # Dead letters.
  dead_letters = ([r[transforms.DEAD_LETTERS] for r in read] +
                  [featurized[transforms.DEAD_LETTERS]] +
                  ([recording_outcomes['recordings_dead']]
                   if recording_outcomes else [])
                  ) | 'AllDeadLetters' >> beam.Flatten()
  _ = (dead_letters
       | 'DeadLetterJson' >> beam.Map(transforms.DeadLetter.to_json_line)
       | 'WriteDeadLetters' >> beam.io.WriteToText(
           posixpath.join(staging_dir, output.DEAD_LETTERS_PREFIX),
           file_name_suffix='.jsonl'))

  # The manifest, from combiners over what was actually written.
  outcomes = {'written': batches, 'dead_lettered': dead_letters}
  outcomes.update({f'filtered{i}': f for i, f in enumerate(filtered)})
  outcomes.update({k: v for k, v in recording_outcomes.items()
                   if k != 'recordings_dead'})  # already in dead_letters
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
  recovered: tuple[str, ...] = ()   # what was done to interrupted commits


def _counters(result) -> dict[str, int]:
  query = result.metrics().query(
      MetricsFilter().with_namespace(transforms.METRICS_NAMESPACE))
  totals = {}
  for counter in query['counters']:  # One result per step that counts it.
    name = counter.key.metric.name
    totals[name] = totals.get(name, 0) + counter.committed
  return totals


def run_job(config: JobConfig, beam_args: Sequence[str] = ()) -> JobResult:
  """Checks inputs, claims the output, runs into staging, then commits.

  Raises:
    JobInputError: an input directory or examples.json is unusable.
    output.OutputDirError: the output directory cannot be used (another run
      holds it; not empty without overwrite; a file of the user's would be
      replaced; not writable).
  """
  sizes = check_inputs(config)
  with output.claimed(config.output_dir):
    recovered = commit.recover(config.output_dir)
    try:
      previous = output.previous_dataset(config.output_dir, config.overwrite)
    except output.OutputDirNotEmptyError as e:
      raise type(e)(' '.join(recovered + [str(e)])) from None
    output.remove_stale_staging(config.output_dir)
    logging.info('Reading %d notes from %s', sum(sizes.values()),
                 ', '.join(d for d, _ in config.inputs))
    staging_dir = output.new_staging_dir(config.output_dir)
    try:
      try:
        result = _run_pipeline(config, beam_args, staging_dir)
        manifest = _complete_manifest(staging_dir)
      except Exception as e:  # Beam re-raises a worker's error as it came.
        if not _disk_full(e):
          raise
        raise output.OutputDirError(
            f'--output_dir {config.output_dir}: the disk is full (no space '
            f'left on device) while writing the new dataset; nothing of it '
            f'was kept, and the directory was left as it was') from None
      recording_dirs = {d for d, _ in config.recordings}
      _check_accounting(manifest, sum(
          n for d, n in sizes.items() if d not in recording_dirs), sum(
              n for d, n in sizes.items() if d in recording_dirs))
      files = commit.commit(staging_dir, config.output_dir, previous)
    except BaseException:
      output.discard(staging_dir)  # Never one in the middle of a commit.
      raise
  return JobResult(manifest, _counters(result), files, tuple(recovered))


def _run_pipeline(config: JobConfig, beam_args: Sequence[str],
                  staging_dir: str):
  options = PipelineOptions(list(beam_args))
  with output.pattern_free_path(staging_dir) as pipeline_dir:
    pipeline = beam.Pipeline(runner=local_runner_for(options),
                             options=options)
    build_pipeline(pipeline, config, pipeline_dir)
    result = pipeline.run()
    result.wait_until_finish()
  return result


def _disk_full(error: BaseException) -> bool:
  """Whether `error`, or one it was raised from, is ENOSPC (Beam wraps a
  worker's OSError in its own types, keeping the words)."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
      return True
    if 'No space left on device' in str(error):
      return True
    error = error.__cause__ or error.__context__
  return False


def _complete_manifest(staging_dir: str) -> manifest_lib.Manifest:
  """The pipeline's manifest, completed with the list of the files it wrote
  (which only exists once its sinks have finished), and TFDS's metadata for
  uncompressed output."""
  path = posixpath.join(staging_dir, manifest_lib.MANIFEST_FILENAME)
  with FileSystems.open(path) as f:
    manifest = manifest_lib.Manifest.from_json(json.loads(f.read()))
  if manifest.compression == manifest_lib.NO_COMPRESSION:
    # The shards are known by now; split_files() finds them in `files`.
    manifest = dataclasses.replace(manifest, files=tuple(
        output.staged_files(staging_dir)))
    shards = {split: [tfrecord_sink.count_records(posixpath.join(
        staging_dir, name)) for name in manifest.split_files(split)]
              for split in manifest.splits}
    tfds_metadata.write(staging_dir, manifest.project_version,
                        manifest.vocabulary.families, manifest.mfcc_shape,
                        manifest.audio_samples, shards)
  manifest = dataclasses.replace(manifest, files=tuple(sorted(
      output.final_name(name) for name in output.staged_files(staging_dir)
      if name != manifest_lib.MANIFEST_FILENAME)))
  with FileSystems.create(path) as f:
    f.write(manifest.dumps().encode('utf-8'))
  return manifest


def _check_accounting(manifest: manifest_lib.Manifest, notes_read: int,
                      recordings_read: int) -> None:
  accounted = manifest.accounting['read']
  if accounted != notes_read:
    raise RuntimeError(
        f'{notes_read} notes were read but {accounted} are accounted for as '
        f'written, filtered or dead-lettered; nothing was committed')
  recordings_accounted = manifest.accounting.get('recordings', {}).get(
      'read', 0)
  if recordings_accounted != recordings_read:
    raise RuntimeError(
        f'{recordings_read} recordings were listed but '
        f'{recordings_accounted} are accounted for as windowed, filtered or '
        f'dead-lettered; nothing was committed')


def summary_table(job: JobResult, output_dir: str) -> str:
  """What happened to every note, for people."""
  accounting = job.manifest.accounting
  rows = [('read', 'examples.json', accounting['read'])]
  rows += [('written', k, v) for k, v in accounting['written'].items()]
  rows += [('filtered', f'by {k}', v)
           for k, v in accounting['filtered'].items()]
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
  for split, copies in accounting.get('augmented', {}).items():
    lines.append(f'  plus {copies} augmented copies of {split} notes and '
                 f'windows ({job.manifest.augmentation["copies"]} each)')
  recorded = accounting.get('recordings')
  if recorded:
    lines.append(
        f'  recordings: {recorded["read"]} listed; windowed '
        f'{sum(recorded["windowed"].values())}, filtered '
        f'{sum(recorded["filtered"].values())}, dead-lettered '
        f'{sum(recorded["dead_lettered"].values())}; windows written ' +
        ', '.join(f'{s} {n}' for s, n in recorded['windows_written'].items())
        + f'; {recorded["silent_windows_skipped"]} silent windows skipped')
  vocabulary = job.manifest.vocabulary
  for split, summary in job.manifest.splits.items():
    lines.append(f'  {split}: {summary.num_examples} examples from '
                 f'{summary.num_instruments} instruments; ' + ', '.join(
                     f'{f} {summary.families[f]}' for f in vocabulary.families))
    if summary.libraries:
      lines.append('    libraries: ' + ', '.join(
          f'{name} {count}' for name, count in summary.libraries.items()))
  method = job.manifest.split_method
  lines.append(f'  split method: {method["name"]}' + (
      f' (held out: {method["holdout_library"]})'
      if method.get('holdout_library') else '') +
               f'; instrument-disjoint: {method["instrument_disjoint"]}')
  if accounting['dead_lettered']:
    lines.append(f'  dead letters: '
                 f'{posixpath.join(output_dir, output.DEAD_LETTERS_DIR)}/')
  return '\n'.join(lines)


def run(argv: Sequence[str]) -> JobResult:
  """Parses flags and runs the job; the library entry for tests and scripts.

  Args:
    argv: the job's flags and Beam's options, without the program name.
  """
  config, beam_args = parse_args(argv)
  job = run_job(config, beam_args)
  print(summary_table(job, config.output_dir))
  return job


def _main(argv: list[str]) -> None:
  try:
    config = config_from_flags(flags.FLAGS)
  except flags.ValidationError as e:
    raise cli.UserError(str(e)) from None
  job = run_job(config, argv[1:])
  print(summary_table(job, config.output_dir))


def main() -> None:
  """Console entry point (nsynth-tfrecords)."""
  cli.run(define_flags, _main,
          user_errors=(JobInputError, output.OutputDirError),
          flags_parser=lambda argv: flags.FLAGS(argv, known_only=True))


if __name__ == '__main__':
  main()
