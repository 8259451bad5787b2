r"""Benchmark: a full-size NSynth rehearsal through every command.

Usage:
  python -m benchmarks.nsynth_scale [--scale=1.0] [--work_dir=SCRATCH_DIR]
      [--stages=tfrecords,train,evaluate,export,predict] [--epochs=1]
      [--beam_args='--runner=DirectRunner ...'] [--train_args='--model=...']
      [--keep]

Lays out a dataset of NSynth's size and layout in --work_dir
(benchmarks.nsynth_layout: --scale of NSynth's 305,979 notes, audio as hard
links to demo notes rendered once), then runs each stage as its command, as
a user would, quietly (each command's output goes to <work_dir>/logs/;
benchmarks.nsynth_stages):
  tfrecords  nsynth-tfrecords, DirectRunner as the README recommends for
             large local runs
  train      nsynth-train: --epochs of the default recipe, streaming from
             disk (--cache=none); its wall time includes start-up, the
             validation pass over every record and the report on valid and
             test, and a second row times the epochs alone (from Keras's
             epoch lines)
  evaluate   nsynth-evaluate on valid and test
  export     nsynth-export
  predict    nsynth-predict on a batch of test notes
For each it prints wall time, throughput, the peak RSS of the command's
whole process tree (benchmarks.process_tree: the RSS of the command and all
its descendants, summed every 0.2 s), and the ratio to the stage's ceiling
measured in this run: for the Beam job its own Featurizer (MFCCs and, as
written, the embedding) on audio already decoded in memory, for the trainer
its input pipeline alone (trainer_throughput). Before starting it says how
much disk the run needs, and refuses if the disk has less. At the end it
removes --work_dir, unless --keep (a kept run's rendered notes and layout
are reused by the next run of the same settings).
"""

import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence

from absl import flags

from beam_pipelines.job_config import JobConfig
from benchmarks import nsynth_layout
from benchmarks import nsynth_stages
from benchmarks import process_tree
from benchmarks.nsynth_stages import GB
from benchmarks.nsynth_stages import STAGES
from benchmarks.nsynth_stages import StageResult
from benchmarks.nsynth_stages import StageSettings
from nsynth_common import cli
from nsynth_contracts import feature_params
from nsynth_contracts import labels

MARKER = 'nsynth_scale.json'     # marks a --work_dir as this benchmark's
ENTRY_BYTES = 512                # one examples.json entry, at most
LINK_BYTES = 128                 # one directory entry, about
JOB_AND_EXPORT_BYTES = 1 << 28   # job dir and export: ~30 MB measured


class ScaleError(Exception):
  """The benchmark cannot run as asked; the message says why."""


@dataclasses.dataclass(frozen=True)
class ScaleConfig:
  """One run of the benchmark; the flags take their defaults from here."""
  work_dir: str = os.path.join(tempfile.gettempdir(), 'nsynth-scale')
  scale: float = 1.0
  stages: tuple[str, ...] = STAGES
  pool_pitch_step: int = 0       # 0: nsynth_layout.auto_pitch_step
  keep: bool = False
  settings: StageSettings = StageSettings()


def _define_flags() -> None:
  d, s = ScaleConfig(), StageSettings()
  # allow_override: a benchmark whose functions the ceilings reuse may
  # define flags of these names when imported (beam_features defined
  # --work_dir and --beam_args at import); main reads every flag into a
  # ScaleConfig before the ceilings import anything.
  fv = {'allow_override': True}
  flags.DEFINE_string('work_dir', d.work_dir, 'Scratch directory (new, '
                      'empty, or a kept run\'s); removed at the end unless '
                      '--keep.', **fv)
  flags.DEFINE_float('scale', d.scale, 'Fraction of NSynth\'s counts: 1.0 '
                     'is 305,979 notes, 0.082 about 25k.', **fv)
  flags.DEFINE_list('stages', list(d.stages), f'Stages to run, of '
                    f'{",".join(STAGES)}; a later one alone needs a kept '
                    'run\'s output.', **fv)
  flags.DEFINE_integer('epochs', s.epochs, 'Training epochs.', lower_bound=1,
                       **fv)
  flags.DEFINE_string('beam_args', s.beam_args, 'Beam options of the Beam '
                      'job, space-separated.', **fv)
  flags.DEFINE_string('train_args', s.train_args, 'Options of nsynth-train, '
                      'space-separated (empty: its defaults).', **fv)
  flags.DEFINE_integer('pool_pitch_step', d.pool_pitch_step, 'Pitch step of '
                       'the rendered demo notes the audio links to (0: every '
                       'pitch at full size, coarser for small runs).',
                       lower_bound=0, **fv)
  flags.DEFINE_integer('predict_notes', s.predict_notes, 'Test notes given '
                       'to nsynth-predict.', lower_bound=1, **fv)
  flags.DEFINE_integer('ceiling_notes', s.ceiling_notes, 'Notes the '
                       'Featurizer ceiling computes.', lower_bound=64, **fv)
  flags.DEFINE_float('ceiling_seconds', s.ceiling_seconds, 'Seconds the '
                     'input pipeline ceiling reads.', lower_bound=1, **fv)
  flags.DEFINE_boolean('keep', d.keep, 'Keep --work_dir.', **fv)


def record_bytes() -> int:
  """A record of the default job before compression (so at most): its MFCCs
  and representations as float32, and room for the rest."""
  frames, coefficients = feature_params.DEFAULT_PARAMS.mfcc_shape
  representations = sum(r.size for r in JobConfig((), '').representations)
  return 4 * (frames * coefficients + representations) + 512


def disk_needed(config: ScaleConfig, instruments, pool_notes: int,
                state: dict, wanted: dict) -> dict[str, int]:
  """Bytes this run will write, by what writes them (what a kept run left
  and this one reuses is not counted)."""
  total = sum(i.num_notes for i in instruments)
  kept = sum(i.num_notes for i in instruments
             if i.source in labels.DEFAULT_KEPT_SOURCES
             and i.family not in labels.DEFAULT_DROPPED_FAMILIES)
  needed = {}
  if state.get('pool') != wanted['pool']:
    needed['rendered notes'] = pool_notes * (nsynth_layout.WAV_BYTES +
                                             ENTRY_BYTES)
  if state.get('layout') != wanted['layout']:
    needed['examples.json and links'] = total * (ENTRY_BYTES + LINK_BYTES)
  if 'tfrecords' in config.stages:
    needed[f'TFRecords ({kept:,} records of at most '
           f'{record_bytes() / 1e3:.0f} kB)'] = kept * record_bytes()
  if set(config.stages) - {'tfrecords'}:
    needed['job and export'] = JOB_AND_EXPORT_BYTES
  return needed


def read_state(work_dir: str) -> dict:
  """What a kept run left in work_dir ({} for a new or empty one).

  Raises:
    ScaleError: work_dir holds files this benchmark did not write.
  """
  marker = os.path.join(work_dir, MARKER)
  if os.path.isfile(marker):
    with open(marker) as f:
      return json.load(f)
  if os.path.isdir(work_dir) and os.listdir(work_dir):
    raise ScaleError(f'--work_dir={work_dir} holds files this benchmark did '
                     'not write; name a new or empty directory')
  return {}


def save_state(work_dir: str, state: dict) -> None:
  os.makedirs(work_dir, exist_ok=True)
  with open(os.path.join(work_dir, MARKER), 'w') as f:
    json.dump(state, f)


def free_bytes(path: str) -> int:
  """Free bytes on the file system that path is (or would be) on."""
  while not os.path.exists(path):
    path = os.path.dirname(os.path.abspath(path))
  return shutil.disk_usage(path).free


def check_disk(config: ScaleConfig, needed: dict[str, int]) -> None:
  """Prints what the run needs; refuses if the disk has less."""
  total, free = sum(needed.values()), free_bytes(config.work_dir)
  parts = ', '.join(f'{what} {n / GB:.2f}' for what, n in needed.items())
  print(f'Disk: about {total / GB:.2f} GB needed ({parts}); '
        f'{free / GB:.1f} GB free', flush=True)
  if total > free:
    raise ScaleError(f'--work_dir={config.work_dir} has {free / GB:.1f} GB '
                     f'free; this run needs about {total / GB:.1f} GB')


def prepare_data(config: ScaleConfig, paths: dict[str, str], state: dict,
                 wanted: dict, pool_notes: int) -> list[StageResult]:
  """Renders the pool and lays out the dataset, unless a kept run of the
  same settings did; returns their rows of the table."""
  rows = []
  if state.get('pool') != wanted['pool']:
    state.pop('layout', None)
    shutil.rmtree(paths['pool'], ignore_errors=True)
    print(f'Rendering {pool_notes:,} demo notes once ...', flush=True)
    start = time.perf_counter()
    nsynth_layout.render_pool(paths['pool'], wanted['pool']['pitch_step'])
    rows.append(StageResult('render', time.perf_counter() - start, None,
                            pool_notes, 'notes/s'))
    state['pool'] = wanted['pool']
    save_state(config.work_dir, state)
  if state.get('layout') != wanted['layout']:
    state.pop('layout', None)
    save_state(config.work_dir, state)
    shutil.rmtree(paths['dataset'], ignore_errors=True)
    print('Laying out the dataset ...', flush=True)
    start = time.perf_counter()
    counts = nsynth_layout.lay_out(paths['dataset'], config.scale,
                                   paths['pool'])
    rows.append(StageResult('layout', time.perf_counter() - start, None,
                            sum(counts.values()), 'notes/s'))
    state['layout'] = wanted['layout']
    save_state(config.work_dir, state)
  return rows


# The stages whose work grows with the notes; export and predict (a fixed
# number of files) cost the same at any scale.
SCALING_STAGES = ('tfrecords', 'train', 'evaluate')


def full_size_estimate(results: Sequence[StageResult], scale: float
                       ) -> float | None:
  """Seconds the whole chain (every stage of STAGES) would take at full
  size: each scaling stage's wall time / scale, the others as they are. An
  upper bound: each stage's start-up is counted 1/scale times. None unless
  every stage ran."""
  timed = {r.name: r.seconds for r in results if r.name in STAGES}
  if set(timed) != set(STAGES):
    return None
  return sum(seconds / scale if stage in SCALING_STAGES else seconds
             for stage, seconds in timed.items())


def format_table(results: Sequence[StageResult]) -> str:
  lines = [f'  {"stage":<10}{"wall s":>9}  {"throughput":<22}'
           f'{"peak RSS":>10}  {"ceiling":<28}{"ratio":>6}']
  for r in results:
    rate = f'{r.rate:,.1f} {r.unit}' if r.items else '-'
    peak = f'{r.peak_rss / GB:.2f} GB' if r.peak_rss is not None else '-'
    ceiling = (f'{r.ceiling} {r.ceiling_rate:,.1f}/s' if r.ceiling_rate
               else '-')
    ratio = f'{r.rate / r.ceiling_rate:.3f}' if r.ceiling_rate else '-'
    lines.append(f'  {r.name:<10}{r.seconds:>9.1f}  {rate:<22}{peak:>10}  '
                 f'{ceiling:<28}{ratio:>6}')
  return '\n'.join(lines)


def run(config: ScaleConfig) -> list[StageResult]:
  """The whole benchmark: data, then each stage; returns the table's rows.

  Raises:
    ScaleError, nsynth_layout.LayoutError: the run cannot go on; said in one
      line.
  """
  if not 0 < config.scale <= 1:
    raise ScaleError(f'--scale must be in (0, 1], got {config.scale}')
  paths = {name: os.path.join(config.work_dir, name) for name in (
      'pool', 'dataset', 'tfrecords', 'job', 'exports', 'logs')}
  nsynth_stages.check_stages(config.stages, paths)
  instruments = nsynth_layout.plan_instruments(config.scale)
  total = sum(i.num_notes for i in instruments)
  step = (config.pool_pitch_step or nsynth_layout.auto_pitch_step(total))
  pool_notes = nsynth_layout.pool_size(step, nsynth_layout.VELOCITIES)
  wanted = {'pool': {'pitch_step': step,
                     'libraries': list(nsynth_layout.POOL_LIBRARIES)},
            'layout': {'scale': config.scale}}
  state = read_state(config.work_dir)
  print(f'NSynth at scale {config.scale}: {total:,} notes of '
        f'{len(instruments)} instruments, linked to {pool_notes:,} rendered '
        f'notes (pitch step {step})', flush=True)
  check_disk(config, disk_needed(config, instruments, pool_notes, state,
                                 wanted))
  save_state(config.work_dir, state)
  results = []
  failed = False
  try:
    results += prepare_data(config, paths, state, wanted, pool_notes)
    os.makedirs(paths['logs'], exist_ok=True)
    for stage in STAGES:
      if stage in config.stages:
        results += nsynth_stages.run_stage(stage, config.settings, paths)
    return results
  except process_tree.CommandFailedError:
    failed = True
    # Hours of a full-size run are not lost with the stage that failed.
    if results:
      print('\nBefore the failure:\n' + format_table(results), flush=True)
    raise
  finally:
    if config.keep:
      print(f'Kept {config.work_dir}', flush=True)
    else:
      remove_work_dir(config.work_dir, keep_logs=failed)


def remove_work_dir(work_dir: str, keep_logs: bool) -> None:
  """Removes the run's scratch; after a failure the commands' logs stay,
  since the error names them."""
  if not keep_logs:
    shutil.rmtree(work_dir, ignore_errors=True)
    return
  for entry in os.listdir(work_dir):
    if entry != 'logs':
      path = os.path.join(work_dir, entry)
      if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
      else:
        os.remove(path)
  print(f'The logs are kept in {os.path.join(work_dir, "logs")}', flush=True)


def config_from_flags(values) -> ScaleConfig:
  def read(cls) -> dict:
    return {f.name: values[f.name].value for f in dataclasses.fields(cls)
            if f.name in values}
  return ScaleConfig(**{**read(ScaleConfig),
                        'stages': tuple(values['stages'].value),
                        'settings': StageSettings(**read(StageSettings))})


def _main(argv: list[str]) -> None:
  cli.no_arguments(argv)
  config = config_from_flags(flags.FLAGS)
  results = run(config)
  print('\n' + ' '.join(['python -m benchmarks.nsynth_scale'] + sys.argv[1:]))
  print(format_table(results))
  estimate = full_size_estimate(results, config.scale)
  if estimate is not None:
    print(f'  the whole chain at full size: at most {estimate / 60:.0f} min '
          f'({", ".join(SCALING_STAGES)} scaled by 1/{config.scale:g} with '
          f'their start-ups; export and predict as measured)')


def main() -> None:
  cli.run(_define_flags, _main,
          user_errors=(ScaleError, nsynth_layout.LayoutError,
                       nsynth_stages.StageError,
                       process_tree.CommandFailedError))


if __name__ == '__main__':
  main()
