r"""Benchmark: the Beam job without and with augmentation, side by side.

Usage:
  python -m benchmarks.augmentation_throughput
      [--input=data/nsynth-demo/nsynth-train] [--copies=0,4]
      [--beam_args="--direct_num_workers=0 --direct_running_mode=in_memory"]

Runs the whole job as a user does (a new process each time) on the same
notes with each --copies value, and prints wall time, the notes read per
second and the records written per second, and each run against the first.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

from absl import flags

from nsynth_common import cli
from nsynth_contracts import dataset_versions
from nsynth_contracts import manifest as manifest_lib


def _define_flags() -> None:
  flags.DEFINE_string('input', 'data/nsynth-demo/nsynth-train',
                      'An NSynth-layout split directory.')
  flags.DEFINE_list('copies', ['0', '4'], '--augment_copies values.')
  flags.DEFINE_string(
      'beam_args',
      '--direct_num_workers=0 --direct_running_mode=multi_threading',
      'Beam options for every run.')


def run_job(copies: int, out: str) -> tuple[float, dict]:
  command = [sys.executable, '-m', 'beam_pipelines.nsynth_tfrecords',
             f'--input={flags.FLAGS.input}', f'--output_dir={out}',
             '--split_single_input=instrument', '--split_fractions=1,0,0',
             '--overwrite', f'--augment_copies={copies}',
             *flags.FLAGS.beam_args.split()]
  start = time.perf_counter()
  subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
  seconds = time.perf_counter() - start
  with open(manifest_lib.manifest_path(
      dataset_versions.resolve_data_dir(out))) as f:
    return seconds, json.load(f)


def _main(argv: list[str]) -> None:
  cli.no_arguments(argv)
  scratch = tempfile.mkdtemp(prefix='nsynth-bench-augment-')
  print(f'Beam job on {flags.FLAGS.input} ({flags.FLAGS.beam_args}):')
  print(f'  {"copies":>6} {"wall s":>8} {"notes/s":>9} {"records/s":>10} '
        f'{"notes/s vs first":>17}')
  first = None
  for copies in (int(c) for c in flags.FLAGS.copies):
    seconds, manifest = run_job(copies, os.path.join(scratch, str(copies)))
    notes = manifest['accounting']['read']
    records = sum(s['num_examples'] for s in manifest['splits'].values())
    rate = notes / seconds
    first = first or rate
    print(f'  {copies:>6} {seconds:8.1f} {rate:9.1f} {records / seconds:10.1f}'
          f' {rate / first:16.2f}x')


def main() -> None:
  cli.run(_define_flags, _main, tensorflow=True)


if __name__ == '__main__':
  main()
