"""The scale benchmark's stages: each one's command, what it went through,
and its ceiling.

benchmarks.nsynth_scale runs them in STAGES order on one --work_dir, whose
folders `paths` names: dataset (the nsynth-* split directories), tfrecords,
job, exports, logs. Each stage is its console script in a subprocess, as a
user runs it, its output in `<logs>/<stage>.log`, timed and its process
tree's peak RSS sampled (benchmarks.process_tree). The ceilings reuse
benchmarks.beam_features and benchmarks.trainer_throughput, imported (with
TensorFlow) only when a ceiling is measured.
"""

import dataclasses
import json
import os
import re
import shlex
import shutil
import sys
from collections.abc import Sequence

from benchmarks import nsynth_layout
from benchmarks import process_tree
from nsynth_common import cli

STAGES = ('tfrecords', 'train', 'evaluate', 'export', 'predict')
COMMANDS = {'tfrecords': ('nsynth-tfrecords',
                          'beam_pipelines.nsynth_tfrecords'),
            'train': ('nsynth-train', 'trainer.task'),
            'evaluate': ('nsynth-evaluate', 'trainer.evaluate'),
            'export': ('nsynth-export', 'serving.export'),
            'predict': ('nsynth-predict', 'serving.predict')}
MODEL_NAME = 'nsynth_instrument'
GB = 1e9
_EPOCH_LINE = re.compile(r'\s*(\d+)/\1 - (\d+)s - ')


class StageError(Exception):
  """A stage cannot run as asked; the message names the flag."""


@dataclasses.dataclass(frozen=True)
class StageSettings:
  """How the stages run; the benchmark's flags take their defaults here."""
  beam_args: str = ('--runner=DirectRunner --direct_num_workers=0 '
                    '--direct_running_mode=multi_threading')
  train_args: str = ''           # nsynth-train's defaults: the product's recipe
  epochs: int = 1
  predict_notes: int = 256
  ceiling_notes: int = 512
  ceiling_seconds: float = 10.0


@dataclasses.dataclass(frozen=True)
class StageResult:
  name: str
  seconds: float
  peak_rss: int | None           # bytes; None: not a process of its own
  items: int
  unit: str
  ceiling: str = ''              # what the ceiling is, and its rate
  ceiling_rate: float | None = None

  @property
  def rate(self) -> float:
    return self.items / self.seconds


def command(stage: str) -> list[str]:
  """The stage's console script beside this Python, as a user runs it."""
  script, module = COMMANDS[stage]
  path = os.path.join(os.path.dirname(sys.executable), script)
  return [path] if os.path.isfile(path) else [sys.executable, '-m', module]


def featurizer_rate(data_dir: str, split_dir: str, notes: int) -> float:
  """Notes per second of the Beam job's own Featurizer computing what the
  manifest's records hold (benchmarks.beam_features.featurizer_rate)."""
  from benchmarks import beam_features
  from nsynth_contracts import dataset_versions
  from nsynth_contracts import manifest as manifest_lib
  manifest = manifest_lib.read(dataset_versions.resolve_data_dir(data_dir))
  return beam_features.featurizer_rate(
      manifest.feature_params,
      tuple(r.representation for r in manifest.representations),
      split_dir, notes)


def input_pipeline_rate(data_dir: str, seconds: float) -> float:
  """Examples per second of the trainer's input pipeline alone over the
  train split's shards, from disk, at the trainer's default batch size."""
  from benchmarks import trainer_throughput
  from nsynth_contracts import dataset_versions
  from nsynth_contracts import manifest as manifest_lib
  from trainer import input_pipeline
  from trainer import train
  data_dir = dataset_versions.resolve_data_dir(data_dir)
  manifest = manifest_lib.read(data_dir)
  files = input_pipeline.split_files(data_dir, manifest, 'train')
  batch_size = train.TrainConfig(data_dir, '').batch_size
  return trainer_throughput.input_pipeline_rate(files, manifest, batch_size,
                                                seconds)


def split_dir(paths: dict[str, str], split: str) -> str:
  return os.path.join(paths['dataset'], f'nsynth-{split}')


def stage_args(stage: str, settings: StageSettings, paths: dict[str, str]
               ) -> list[str]:
  """The flags (and files) of one stage's command."""
  job = f'--job_dir={paths["job"]}'
  if stage == 'tfrecords':
    inputs = ','.join(split_dir(paths, s) for s in nsynth_layout.NSYNTH_SPLITS)
    return [f'--input={inputs}', f'--output_dir={paths["tfrecords"]}',
            *shlex.split(settings.beam_args)]
  if stage == 'train':
    return [f'--data_dir={paths["tfrecords"]}', job,
            f'--epochs={settings.epochs}', '--cache=none',
            *shlex.split(settings.train_args)]
  if stage == 'evaluate':
    return [job, '--split=valid', '--split=test']
  if stage == 'export':
    return [job, f'--export_base={paths["exports"]}',
            f'--model_name={MODEL_NAME}']
  audio = os.path.join(split_dir(paths, 'test'), 'audio')
  return [f'--model={os.path.join(paths["exports"], MODEL_NAME)}'] + [
      os.path.join(audio, f)
      for f in sorted(os.listdir(audio))[:settings.predict_notes]]


def stage_items(stage: str, settings: StageSettings, paths: dict[str, str],
                args: Sequence[str]) -> tuple[int, str]:
  """(what a stage went through, its unit of throughput)."""
  if stage in ('export', 'predict'):
    return (0, '') if stage == 'export' else (len(args) - 1, 'files/s')
  from nsynth_contracts import dataset_versions
  from nsynth_contracts import manifest as manifest_lib
  with open(manifest_lib.manifest_path(
      dataset_versions.resolve_data_dir(paths['tfrecords']))) as f:
    manifest = json.load(f)
  if stage == 'tfrecords':
    return sum(manifest['accounting']['written'].values()), 'records/s'
  splits = manifest['splits']
  if stage == 'train':
    return splits['train']['num_examples'] * settings.epochs, 'examples/s'
  return sum(splits[s]['num_examples'] for s in ('valid', 'test')), 'records/s'


def stage_ceiling(stage: str, settings: StageSettings, paths: dict[str, str]
                  ) -> tuple[str, float | None]:
  """(what the stage's ceiling is, its rate), measured now."""
  # The ceilings run TensorFlow in this process: without its start-up lines.
  cli.import_tensorflow_quietly()
  if stage == 'tfrecords':
    print('[tfrecords] ceiling: the Featurizer on notes in memory ...',
          flush=True)
    return 'Featurizer', featurizer_rate(
        paths['tfrecords'], split_dir(paths, 'test'), settings.ceiling_notes)
  if stage == 'train':
    print('[train] ceiling: the input pipeline alone ...', flush=True)
    return 'input pipeline', input_pipeline_rate(paths['tfrecords'],
                                                 settings.ceiling_seconds)
  return '', None


# What each stage writes, removed before it runs; what it reads (from the
# stage that writes it), and where.
_WRITES = {'tfrecords': 'tfrecords', 'train': 'job', 'export': 'exports'}
_NEEDS = {'train': ('tfrecords', ''), 'evaluate': ('train', ''),
          'export': ('train', ''), 'predict': ('export', MODEL_NAME)}


def check_stages(stages: Sequence[str], paths: dict[str, str]) -> None:
  """Refuses, before any work, a stage whose input neither an earlier stage
  of this run nor a kept run provides."""
  unknown = sorted(set(stages) - set(STAGES))
  if unknown:
    raise StageError(f'--stages: unknown {unknown}; the stages are '
                     f'{",".join(STAGES)}')
  for stage in stages:
    if stage not in _NEEDS:
      continue
    writer, name = _NEEDS[stage]
    if writer not in stages and not os.path.exists(
        os.path.join(paths[_WRITES[writer]], name)):
      raise StageError(f'--stages: {stage} needs what {writer} writes; add '
                       f'{writer}, or use the --work_dir of a run kept '
                       '(--keep) after it')


def run_stage(stage: str, settings: StageSettings, paths: dict[str, str]
              ) -> list[StageResult]:
  """Runs one stage's command, then its ceiling if it has one; the
  trainer's epochs get a row of their own."""
  if stage in _WRITES:
    shutil.rmtree(paths[_WRITES[stage]], ignore_errors=True)
  args = stage_args(stage, settings, paths)
  print(f'[{stage}] {COMMANDS[stage][0]} {" ".join(args[:3])}'
        f'{" ..." if len(args) > 3 else ""}', flush=True)
  seconds, peak = process_tree.run_measured(
      command(stage) + args, os.path.join(paths['logs'], f'{stage}.log'))
  print(f'[{stage}] {seconds:.1f} s, peak RSS {peak / GB:.2f} GB', flush=True)
  items, unit = stage_items(stage, settings, paths, args)
  ceiling, rate = stage_ceiling(stage, settings, paths)
  rows = [StageResult(stage, seconds, peak, items, unit, ceiling, rate)]
  if stage == 'train':
    # The epochs alone, without start-up, validation of the data and the
    # report: what the input pipeline's ceiling bounds.
    epochs = epoch_seconds(os.path.join(paths['logs'], 'train.log'))
    if epochs:
      rows.append(StageResult('  epochs', sum(epochs), None, items, unit,
                              ceiling, rate))
  return rows


def epoch_seconds(log_path: str) -> list[int]:
  """Seconds of each epoch, from the lines Keras prints at an epoch's end
  (`37/37 - 58s - 2s/step - ...`, validation included)."""
  with open(log_path, errors='replace') as f:
    return [int(m.group(2)) for m in map(_EPOCH_LINE.match, f) if m]
