r"""NSynth (examples.json + audio/*.wav) -> MFCC TFRecords and a manifest.

Usage:
  nsynth-tfrecords \
      --input=nsynth-train,nsynth-valid,nsynth-test \
      --output_dir=data/tfrecords \
      [--runner=DirectRunner --direct_num_workers=0 \
       --direct_running_mode=multi_threading] [other Beam options]

One --input per NSynth split directory (`nsynth-valid` -> split `valid`), or a
single directory split by --split_single_input. Each run writes a new version,
`<output_dir>/<version>/` with `<split>-SSSSS-of-NNNNN.tfrecord.gz`,
`dead_letters/*.jsonl` and, last, `manifest.json`; readers (nsynth-train
--data_dir=<output_dir>) take the newest complete version. Every note is
written, filtered or dead-lettered, and a summary table says how many of each.
Flags this job does not define are Beam pipeline options (--runner,
--setup_file, --project, ...), passed to Beam as Beam documents.

This module is the command: flags, the summary, one-line errors. The job
itself is `beam_pipelines.job.run_job(JobConfig)`.
"""

import dataclasses
import sys
from collections.abc import Sequence

from absl import flags

from nsynth_common import cli

# What Beam logs when first imported ("apitools not found") is no news to a
# user; the filter lasts for these imports only.
with cli.import_noise_filtered():
  from beam_pipelines import accounting_table
  from beam_pipelines import augmentation
  from beam_pipelines import finished_dataset
  from beam_pipelines import gcs
  from beam_pipelines import job as job_lib
  from beam_pipelines import output
  from beam_pipelines import progress
  from beam_pipelines import splits
  from beam_pipelines import tensorflow_threads
  from beam_pipelines import tfrecord_sink
  from beam_pipelines.job_config import JobConfig
  from nsynth_contracts import examples_json
  from nsynth_contracts import labels
  from nsynth_contracts import precision
  from nsynth_contracts import representation
  from nsynth_contracts import representation_kinds
  from nsynth_contracts import schema

_DEFAULTS = JobConfig(inputs=(), output_dir='')
_PROGRAM = 'nsynth-tfrecords'


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """The job's own flags; every other flag is a Beam pipeline option."""
  _define_io_flags(flag_values)
  _define_selection_flags(flag_values)
  _define_record_flags(flag_values)


def _define_io_flags(flag_values: flags.FlagValues) -> None:
  fv = {'flag_values': flag_values}
  flags.DEFINE_list(
      'input', None, 'NSynth split directories (local or gs://), each '
      'holding examples.json and audio/. The split name comes from the '
      'directory: nsynth-train -> train. Directories of one name are one '
      'split: NSynth\'s nsynth-train and a synthesis family\'s '
      '(nsynth-render-demo --synthesis) train together; the manifest counts '
      'each split\'s notes per library.', required=True, **fv)
  flags.DEFINE_string('output_dir', None, 'Where each run writes a new '
                      'version of the dataset (local or gs://): '
                      '<output_dir>/<version>/ with the TFRecords, '
                      'dead_letters/ and manifest.json.', required=True,
                      **fv)
  flags.DEFINE_boolean(
      'overwrite', _DEFAULTS.overwrite, 'Write a new version where one is '
      'already, then delete the older ones (the files their manifests '
      'list, nothing else). Without it, a --output_dir holding a dataset '
      'is refused.', **fv)
  flags.DEFINE_list(
      'recordings', [], 'Directories of recordings of any length (WAV, FLAC, '
      'OGG, MP3) with a labels.json, named <anything>-<split> (e.g. '
      'phrases-train): each is cut into 4 s windows, every '
      '--window_hop_seconds, and each sounding window is written to that '
      'split (see beam_pipelines/recordings.py).', **fv)
  flags.DEFINE_float('window_hop_seconds', _DEFAULTS.windows.hop_seconds,
                     'Seconds between the starts of windows of '
                     '--recordings.', lower_bound=0.1, **fv)


def _define_selection_flags(flag_values: flags.FlagValues) -> None:
  """Which notes go to which split, and how many copies of each."""
  fv = {'flag_values': flag_values}
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
      'instrument (no instrument in two splits) or by note (a random split, '
      'which leaks instruments, as the seed_cnn recipe\'s figure was made).',
      **fv)
  flags.DEFINE_list('split_fractions',
                    [str(f) for f in _DEFAULTS.split_fractions],
                    'train,valid,test fractions for --split_single_input.',
                    **fv)
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


def _define_record_flags(flag_values: flags.FlagValues) -> None:
  """What a record holds, how it is written, how it is computed."""
  fv = {'flag_values': flag_values}
  flags.DEFINE_boolean('keep_audio', _DEFAULTS.keep_audio,
                       'Also store each note\'s 4 s waveform.', **fv)
  flags.DEFINE_integer('num_shards', _DEFAULTS.num_shards, 'Shards per split '
                       '(0: the runner decides, which avoids shuffling the '
                       'records).', lower_bound=0, **fv)
  flags.DEFINE_enum(
      'compression', _DEFAULTS.compression.lower(), ['gzip', 'none'],
      'gzip: <split>-*.tfrecord.gz (smaller). none: plain <split>-*.tfrecord '
      'plus the dataset_info.json and features.json that TensorFlow Datasets '
      'reads, so that tfds.builder_from_directory(<the version>) loads the '
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
      f'{_DEFAULTS.params.num_mel_bands} mel bands. 20 is librosa\'s default '
      'and the seed_cnn recipe\'s; more keep more of the spectral envelope '
      '(BUILD_NOTES.md, "Unheard instruments").',
      lower_bound=1, upper_bound=_DEFAULTS.params.num_mel_bands, **fv)
  flags.DEFINE_list(
      'embedding', [r.describe() for r in _DEFAULTS.representations],
      'The pretrained representations each record also holds, each under '
      f'its own key ({"; ".join(representation_kinds.summaries())}). Each '
      f'is {"; or ".join(representation_kinds.examples())}. none: MFCCs '
      'only.',
      **fv)
  flags.DEFINE_boolean(
      'progress', True, 'Show how far featurizing is (4 s clips done: notes '
      'and recordings\' windows; clips/s; time left) on stderr while the job '
      'runs on the local engine: in place on a terminal, else a line every '
      f'{progress.PLAIN_LINE_SECONDS:g} s. --noprogress keeps only the lines '
      'that name each stage.', **fv)
  flags.DEFINE_enum(
      'precision', _DEFAULTS.precision, list(precision.CHOICES),
      'What the representations\' networks multiply in: bfloat16 where the '
      'CPU has AVX-512 BF16 or AMX (faster, within a stated tolerance of '
      'float32), float32, or auto: bfloat16 wherever each worker can. The '
      'manifest records what they used.', **fv)
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
  method, inputs = _splits_from_flags(values)
  try:
    fractions = splits.parse_fractions(','.join(values.split_fractions))
    recording_dirs = tuple((d, examples_json.split_name_from_dir(d))
                           for d in values.recordings if d)
  except ValueError as e:
    raise flags.ValidationError(str(e)) from None
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
      params=dataclasses.replace(_DEFAULTS.params, num_mfcc=values.num_mfcc),
      representations=_representations_from_flag(values.embedding),
      precision=values.precision)
  try:
    _ = config.vocabulary
  except ValueError as e:
    raise flags.ValidationError(f'--sources/--drop_families: {e}') from None
  return config


def _representations_from_flag(items: list[str]
                               ) -> tuple[representation.Representation, ...]:
  """--embedding's items as representations (none: none).

  Raises:
    flags.ValidationError: an item no representation knows, one named twice,
      or 'none' beside others.
  """
  items = [item for item in items if item]
  if items == ['none']:
    return ()
  try:
    parsed = tuple(representation_kinds.parse(item) for item in items)
    representation.check_distinct(parsed)
    for heard in parsed:
      schema.check_representation_key(heard.key)
  except ValueError as e:
    raise flags.ValidationError(f'--embedding: {e}') from None
  return parsed


def _splits_from_flags(values: flags.FlagValues
                       ) -> tuple[splits.SplitMethod, tuple[tuple[str, str],
                                                            ...]]:
  """The split method and the (directory, split name) inputs."""
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
    inputs = tuple((d, examples_json.split_name_from_dir(d)) for d in
                   split_dirs)
  except ValueError as e:
    raise flags.ValidationError(str(e)) from None
  names = [name for _, name in inputs]
  if method is splits.SplitMethod.LIBRARY and not {'train', 'valid'} <= set(
      names):
    raise flags.ValidationError(
        '--holdout_library needs train and valid input directories (and '
        f'test); the inputs give splits {names}')
  repeated = sorted({d for d in split_dirs if split_dirs.count(d) > 1})
  if repeated:
    raise flags.ValidationError(f'--input names {repeated[0]} twice')
  return method, inputs


def parse_args(argv: Sequence[str]) -> tuple[JobConfig, list[str]]:
  """The job's flags -> JobConfig; the flags it does not know are Beam's.

  Parses into a fresh FlagValues, so that a process may call it many times.

  Raises:
    flags.Error: a bad or missing flag, named.
  """
  values, beam_args = _parsed(argv)
  return config_from_flags(values), beam_args


def _parsed(argv: Sequence[str]) -> tuple[flags.FlagValues, list[str]]:
  values = flags.FlagValues()
  define_flags(values)
  return values, values([_PROGRAM] + list(argv), known_only=True)[1:]


def run(argv: Sequence[str]) -> job_lib.JobResult | job_lib.DryRun:
  """Runs the command with these flags (no program name), printing its
  summary: what `nsynth-tfrecords` does, for tests and scripts.

  Raises:
    flags.Error: a bad or missing flag, named.
    job_lib.JobInputError, output.OutputDirError: see job_lib.run_job."""
  values, beam_args = _parsed(argv)
  return _run(config_from_flags(values), beam_args, values.progress)


def _run(config: JobConfig, beam_args: Sequence[str],
         show_progress: bool) -> job_lib.JobResult | job_lib.DryRun:
  # Stages and progress on stderr, as other commands do; the summary on stdout.
  with gcs.credentials_lookup_said_once():
    job = job_lib.run_job(config, beam_args, report=sys.stderr,
                          show_progress=show_progress)
  if isinstance(job, job_lib.DryRun):
    print(f'{job.runner} dry run: the job for {job.inputs.notes} notes was '
          f'built and translated, not submitted; nothing was written')
  else:
    print(accounting_table.summary_table(job, job.dataset_dir))
  return job


def main() -> None:
  """Console entry point (nsynth-tfrecords)."""
  tensorflow_threads.for_this_process()

  def main_with_global_flags(argv: list[str]) -> None:
    try:
      config = config_from_flags(flags.FLAGS)
    except flags.ValidationError as e:
      raise cli.UserError(str(e)) from None
    _run(config, argv[1:], flags.FLAGS.progress)

  cli.run(define_flags, main_with_global_flags,
          user_errors=(job_lib.JobInputError, output.OutputDirError,
                       finished_dataset.NothingWrittenError),
          flags_parser=lambda argv: flags.FLAGS(argv, known_only=True),
          tensorflow=True)


if __name__ == '__main__':
  main()
