r"""Benchmark: the seed recipe's librosa loop vs our features vs the Beam job.

Usage:
  python -m benchmarks.beam_features [--work_dir=SCRATCH_DIR]
      [--pitch_step=2] [--velocities=50,100] [--librosa_notes=0]

On one set of rendered demo notes, in one run, it times
  (a) the seed recipe's way: a Python loop of librosa.load(path) (resampling to
      22,050 Hz, librosa's default) + librosa.feature.mfcc per file;
  (b) the bare feature function (nsynth_contracts.features) in batches of 64
      over audio already decoded into memory, as a plain tf.function and
      XLA-compiled as the job runs it; and the job's own Featurizer with the
      pretrained embedding beside the MFCCs (what a default record costs);
  (c) the whole Beam job as a user runs it (a new process, DirectRunner on
      every core), reading the WAVs and writing TFRecords + manifest, with
      the embedding (the default) and without (--embedding=none);
and prints notes per second for each, the ratios c/a and c/b (b: the bare
function of the same features as that job), and where one note's time goes
inside the job (read, decode, features, serialize, write).
"""

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zlib

import librosa
import numpy as np
from absl import flags
from isal import isal_zlib

from demo_data import notes as demo_notes
from nsynth_common import cli
from nsynth_contracts import audio_decoding
from nsynth_contracts import dataset_versions
from nsynth_contracts import feature_params
from nsynth_contracts import manifest as manifest_lib
from nsynth_contracts import schema

# TensorFlow and Beam are imported inside the functions that use them: they
# log at import, and cli.run quiets them first.


def _define_flags() -> None:
  flags.DEFINE_string(
      'work_dir', os.path.join(tempfile.gettempdir(), 'nsynth-bench'),
      'Scratch directory for audio and TFRecords.')
  flags.DEFINE_integer('pitch_step', 2, 'Demo pitch step.')
  flags.DEFINE_list('velocities', ['50', '100'], 'Demo velocities.')
  flags.DEFINE_integer(
      'librosa_notes', 0, 'Time (a) on the first N notes only (0: all); its '
      'rate is per note, so a subset shortens the run without changing it.')
  flags.DEFINE_multi_string(
      'beam_args',
      ['--direct_num_workers=0 --direct_running_mode=multi_threading',
       '--direct_num_workers=0 --direct_running_mode=multi_threading '
       '--embedding=none',
       '--direct_num_workers=0 --direct_running_mode=multi_threading '
       '--embedding=none --noprogress'],
      'Beam options (and job flags) for (c), one run per --beam_args '
      '(repeat the flag for several); each job is compared with the bare '
      'function of the features it wrote (the MFCCs alone, or with the '
      'default representation).')
  flags.DEFINE_integer('embedding_notes', 512, 'Notes (b) times the '
                       'Featurizer with the embedding on.', lower_bound=64)
  flags.DEFINE_list('parts', list(_PARTS), f'What to run, of {_PARTS}.')
  flags.register_validator('parts', lambda v: set(v) <= set(_PARTS),
                           message=f'--parts are some of {_PARTS}')
  flags.DEFINE_string(
      'baseline_tree', None, 'A checkout of another commit of this project '
      '(e.g. `git worktree add /tmp/base <commit>`): each (c) job also runs '
      'there, alternating with this tree --rounds times, and prints both '
      'rates and their ratio. The same interpreter and packages run both.')
  flags.DEFINE_integer('rounds', 2, 'Runs of each (c) job per tree with '
                       '--baseline_tree.', lower_bound=1)


_PARTS = ('breakdown', 'a', 'b', 'c')


def _audio_paths(split_dirs):
  paths = []
  for split_dir in split_dirs:
    with open(os.path.join(split_dir, 'examples.json')) as f:
      paths += [os.path.join(split_dir, 'audio', k + '.wav')
                for k in json.load(f)]
  return sorted(paths)


def time_librosa_loop(paths):
  librosa.feature.mfcc(y=librosa.load(paths[0])[0], sr=22050)  # warm caches
  start = time.perf_counter()
  for path in paths:
    y, sr = librosa.load(path)
    librosa.feature.mfcc(y=y, sr=sr)
  return len(paths) / (time.perf_counter() - start)


def decode_all(paths):
  return np.stack([audio_decoding.decode_clip(open(p, 'rb').read())
                   for p in paths])


def time_feature_function(clips, jit_compile, batch_size=64):
  import tensorflow as tf

  from nsynth_contracts import features
  fn = tf.function(features.waveform_to_mfcc, jit_compile=jit_compile,
                   input_signature=[tf.TensorSpec([None, clips.shape[1]],
                                                  tf.float32)])
  with cli.native_stderr_silenced():  # XLA's compile-time log lines
    fn(clips[:batch_size]).numpy()  # trace (and compile)
  start = time.perf_counter()
  for i in range(0, len(clips), batch_size):
    fn(clips[i:i + batch_size]).numpy()
  return len(clips) / (time.perf_counter() - start)


def featurizer_rate(params, representations, split_dir: str,
                    notes: int) -> float:
  """Notes per second of the Beam job's own Featurizer (these MFCC
  parameters, these representations; the job's default batch and XLA
  setting) on a split's notes decoded into memory, repeated to `notes`. One
  caller: TensorFlow's own threads already use every core (two callers, as
  the job's bundle threads, measured no faster here)."""
  from beam_pipelines import featurize
  from beam_pipelines.job_config import JobConfig
  from nsynth_contracts import examples_json
  from nsynth_contracts import representation
  job = JobConfig(inputs=(), output_dir='')
  featurizer = featurize.Featurizer(
      params, keep_audio=False, batch_size=job.batch_size,
      jit_compile=job.jit_compile, augment=job.augment,
      train_split=job.train_split,
      representations=tuple(representation.WithWeights.read(r)
                            for r in representations))
  featurizer.setup()
  with open(os.path.join(split_dir, 'examples.json')) as f:
    entries = sorted(json.load(f).items())[:notes]
  read = [examples_json.note_from_entry(key, entry, split_dir, 'test')
          for key, entry in entries]
  clips = decode_all([note.audio_path for note in read])
  rows = [(read[i % len(read)], 0, clips[i % len(read)])
          for i in range(notes)]
  list(featurizer.featurize_all(rows[:featurizer.batch_size]))  # warm up
  # The faster of two passes: a ceiling, on a machine other work may share.
  best = float('inf')
  for _ in range(2):
    start = time.perf_counter()
    for _ in featurizer.featurize_all(rows):
      pass
    best = min(best, time.perf_counter() - start)
  return notes / best


def time_beam_job(split_dirs, output_dir, beam_args, tree: str | None = None):
  """(notes written, wall seconds, whether it wrote a representation) of
  the job run by this project, or by the checkout at `tree`."""
  shutil.rmtree(output_dir, ignore_errors=True)
  command = [sys.executable, '-m', 'beam_pipelines.nsynth_tfrecords',
             '--input=' + ','.join(split_dirs), '--output_dir=' + output_dir,
             # Keep every note, so all three measure the same set.
             '--sources=acoustic,electronic,synthetic', '--drop_families=',
             ] + beam_args.split()
  env = None if tree is None else {**os.environ, 'PYTHONPATH': tree}
  start = time.perf_counter()
  subprocess.run(command, check=True, stdout=subprocess.DEVNULL,
                 stderr=subprocess.DEVNULL, env=env, cwd=tree)
  seconds = time.perf_counter() - start
  with open(manifest_lib.manifest_path(
      dataset_versions.resolve_data_dir(output_dir))) as f:
    manifest = json.load(f)
  written = sum(manifest['accounting']['written'].values())
  return written, seconds, bool(manifest.get('representations'))


def per_note_breakdown(paths, clips, sample=512):
  """Microseconds per note for each step the job does, single process."""
  import tensorflow as tf

  from beam_pipelines import tfrecord_sink
  from nsynth_contracts import features
  paths = paths[:sample]
  steps = {}

  def timed(name, fn, items):
    # Twice, keeping the second: the first pass pays for cold files, which a
    # long job pays once, not per note. Each result is dropped before the
    # next, as in the job: holding 512 fresh 256 KB arrays would time page
    # faults, not decoding.
    for _ in range(2):
      start = time.perf_counter()
      for x in items:
        fn(x)
      steps[name] = (time.perf_counter() - start) / len(items) * 1e6
    return [fn(x) for x in items]

  data = timed('read file', lambda p: open(p, 'rb').read(), paths)
  params = feature_params.DEFAULT_PARAMS
  decoded = timed('decode + validate WAV', lambda d: audio_decoding.decode(
      d, params.sample_rate_hz, first_seconds=params.clip_seconds).samples,
                  data)
  timed('pad/trim to clip', feature_params.pad_or_trim_numpy, decoded)
  fn = tf.function(features.waveform_to_mfcc, jit_compile=True,
                   input_signature=[tf.TensorSpec([None, clips.shape[1]],
                                                  tf.float32)])
  with cli.native_stderr_silenced():  # XLA's compile-time log lines
    fn(clips[:64]).numpy()
  batches = [clips[i:i + 64] for i in range(0, sample, 64)]
  start = time.perf_counter()
  mfccs = np.concatenate([fn(b).numpy() for b in batches])
  steps['MFCC (batch 64, 2 TF threads, wall)'] = (
      time.perf_counter() - start) / sample * 1e6
  records = timed('serialize tf.train.Example', lambda m: schema.serialize_note(
      schema.NoteExample(m, 3, 'guitar', 'acoustic', 'guitar_acoustic_001',
                         60, 100, 'guitar_acoustic_001-060-100')), mfccs)
  framed = timed('TFRecord framing (crc32c)', tfrecord_sink.tfrecord_frame,
                 records)
  for level in (1, 6):
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
    timed(f'gzip, zlib level {level}', compressor.compress, framed)
  for level in (1, 3):
    compressor = isal_zlib.compressobj(level, isal_zlib.DEFLATED, 31)
    timed(f'gzip, ISA-L level {level}', compressor.compress, framed)
  return steps


def _main(argv: list[str]) -> None:
  cli.no_arguments(argv)
  work = flags.FLAGS.work_dir
  audio_dir = os.path.join(work, 'audio')
  if not glob.glob(os.path.join(audio_dir, 'nsynth-*', 'examples.json')):
    print(f'Rendering demo notes into {audio_dir} ...', flush=True)
    demo_notes.render_dataset(audio_dir, flags.FLAGS.pitch_step,
                              [int(v) for v in flags.FLAGS.velocities])
  split_dirs = sorted(glob.glob(os.path.join(audio_dir, 'nsynth-*')))
  paths = _audio_paths(split_dirs)
  print(f'{len(paths)} notes of 4 s in {len(split_dirs)} split directories',
        flush=True)

  parts = set(flags.FLAGS.parts)
  if 'breakdown' in parts:
    print('\nWhere one note\'s time goes (single process, microseconds):')
    clips = decode_all(paths[:512])
    for name, micros in per_note_breakdown(paths, clips).items():
      print(f'  {name:<30} {micros:8.1f}')
    print(flush=True)
  rates = {'a': _librosa_rate(paths) if 'a' in parts else None}
  if 'b' in parts:
    rates.update(_feature_rates(paths, split_dirs[0]))
  if 'c' in parts:
    for beam_args in flags.FLAGS.beam_args:
      _beam_job_rates(split_dirs, beam_args, rates)


def _librosa_rate(paths) -> float:
  librosa_paths = paths[:flags.FLAGS.librosa_notes or len(paths)]
  rate_a = time_librosa_loop(librosa_paths)
  print(f'(a) librosa loop: {rate_a:8.1f} notes/s '
        f'({len(librosa_paths)} notes)', flush=True)
  return rate_a


def _feature_rates(paths, split_dir: str) -> dict[str, float]:
  """(b): the bare MFCC function, and the job's Featurizer with the
  default representation."""
  clips = decode_all(paths)
  rates_b = {}
  for jit_compile in (False, True):
    rates_b[jit_compile] = time_feature_function(clips, jit_compile)
    print(f'(b) feature fn:   {rates_b[jit_compile]:8.1f} notes/s '
          f'({len(paths)} notes, jit_compile={jit_compile})', flush=True)
  del clips
  from beam_pipelines.job_config import JobConfig
  job = JobConfig(inputs=(), output_dir='')
  rate_embedding = featurizer_rate(job.params, job.representations,
                                   split_dir, flags.FLAGS.embedding_notes)
  print(f'(b) MFCC + embedding (the Featurizer): {rate_embedding:8.1f} '
        f'notes/s ({flags.FLAGS.embedding_notes} notes)', flush=True)
  return {'mfcc': max(rates_b.values()), 'embedding': rate_embedding}


def _beam_job_rates(split_dirs, beam_args: str, rates: dict) -> None:
  """(c): one job as a user runs it, against (a) and (b) when measured,
  and against the baseline tree's when given."""
  work = flags.FLAGS.work_dir
  baseline = flags.FLAGS.baseline_tree
  if baseline:
    measured = {'this tree': [], 'baseline': []}
    for _ in range(flags.FLAGS.rounds):
      for name, tree in (('this tree', None), ('baseline', baseline)):
        written, seconds, _ = time_beam_job(
            split_dirs, os.path.join(work, 'tfrecords'), beam_args, tree)
        measured[name].append(written / seconds)
    for name, each in measured.items():
      print(f'(c) Beam job, {name}: {np.median(each):8.1f} notes/s (runs: '
            f'{", ".join(f"{r:.1f}" for r in each)}; {beam_args})')
    ratio = np.median(measured['this tree']) / np.median(measured['baseline'])
    print(f'    side by side: {ratio:.2f}x the baseline\'s notes/s (target '
          f'>= 2x)', flush=True)
    return
  written, seconds, embedded = time_beam_job(
      split_dirs, os.path.join(work, 'tfrecords'), beam_args)
  rate_c = written / seconds
  print(f'(c) Beam job:     {rate_c:8.1f} notes/s ({written} notes in '
        f'{seconds:.1f} s wall, {beam_args})', flush=True)
  # The same job on the smallest split alone separates the fixed cost
  # (imports, worker start-up, tracing) from the cost per note.
  small_dir = min(split_dirs, key=lambda d: len(_audio_paths([d])))
  small_written, small_seconds, _ = time_beam_job(
      [small_dir], os.path.join(work, 'tfrecords-small'), beam_args)
  marginal = (written - small_written) / max(seconds - small_seconds, 1e-9)
  fixed = small_seconds - small_written / marginal
  print(f'    fixed start-up ~{fixed:.1f} s; past it {marginal:.1f} notes/s')
  # Against the bare function of the features this job wrote.
  rate_b = rates.get('embedding' if embedded else 'mfcc')
  if rates['a']:
    print(f'    c/a = {rate_c / rates["a"]:.2f} (target >= 8); past '
          f'start-up {marginal / rates["a"]:.2f}x (a)')
  if rate_b:
    print(f'    c/b = {rate_c / rate_b:.2f}; past start-up '
          f'{marginal / rate_b:.2f}x (b; target >= 0.8)', flush=True)


def main() -> None:
  cli.run(_define_flags, _main, tensorflow=True)


if __name__ == '__main__':
  main()
