r"""Benchmark: training with 2 workers against 1, side by side, in one run.

Usage:
  python -m benchmarks.multi_worker [--data_dir=data/tfrecords]
      [--model=timbre_tcn] [--batch_size=64] [--epochs=3]

Runs the trainer command as a cluster runs it: one process per worker with
TF_CONFIG, on localhost ports, the same global batch either way. Each
configuration runs twice, for 1 epoch and for --epochs, so that the
difference gives the time per epoch without start-up (imports, the cluster
handshake, data validation, the report). Prints examples/s per
configuration and the speed-up of 2 workers over 1.

On one machine the two workers share its cores, so this measures the cost
of the collectives rather than a real cluster's gain.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time

from absl import flags

from nsynth_common import cli
from nsynth_contracts import dataset_versions
from nsynth_contracts import manifest as manifest_lib


def _define_flags() -> None:
  flags.DEFINE_string('data_dir', 'data/tfrecords',
                      'A nsynth-tfrecords output.')
  flags.DEFINE_string('model', 'timbre_tcn', 'Model to train.')
  flags.DEFINE_integer('batch_size', 64, 'Global batch size.')
  flags.DEFINE_integer('epochs', 3, 'Epochs of the longer run.',
                       lower_bound=2)


def _free_ports(count: int) -> list[int]:
  sockets = [socket.socket() for _ in range(count)]
  for s in sockets:
    s.bind(('127.0.0.1', 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def train_seconds(workers: int, epochs: int, scratch: str) -> float:
  """Wall time of one training run with `workers` processes."""
  job_dir = tempfile.mkdtemp(dir=scratch)
  cluster = {'worker': [f'127.0.0.1:{p}' for p in _free_ports(workers)]}
  per_worker_batch = flags.FLAGS.batch_size // workers
  start = time.perf_counter()
  processes = []
  for index in range(workers):
    env = dict(os.environ, TF_CONFIG=json.dumps(
        {'cluster': cluster, 'task': {'type': 'worker', 'index': index}}))
    processes.append(subprocess.Popen(
        [sys.executable, '-m', 'trainer.task',
         f'--data_dir={flags.FLAGS.data_dir}', f'--job_dir={job_dir}',
         f'--model={flags.FLAGS.model}', f'--epochs={epochs}',
         f'--batch_size={per_worker_batch}', '--eval_splits=valid',
         '--distribution=multi_worker', '--novalidate_data'],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True))
  for process in processes:
    _, stderr = process.communicate()
    if process.returncode:
      raise RuntimeError(f'a worker failed:\n{stderr[-2000:]}')
  return time.perf_counter() - start


def _main(argv: list[str]) -> None:
  cli.no_arguments(argv)
  manifest = manifest_lib.read(
      dataset_versions.resolve_data_dir(flags.FLAGS.data_dir))
  examples = manifest.splits['train'].num_examples
  scratch = tempfile.mkdtemp(prefix='nsynth-bench-mw-')
  rates = {}
  print(f'{examples} training examples, global batch {flags.FLAGS.batch_size}, '
        f'model {flags.FLAGS.model}')
  for workers in (1, 2):
    short = train_seconds(workers, 1, scratch)
    long = train_seconds(workers, flags.FLAGS.epochs, scratch)
    per_epoch = (long - short) / (flags.FLAGS.epochs - 1)
    rates[workers] = examples / per_epoch
    print(f'  {workers} worker(s): {short:6.1f} s for 1 epoch, {long:6.1f} s '
          f'for {flags.FLAGS.epochs}: {per_epoch:5.2f} s per epoch past '
          f'start-up, '
          f'{rates[workers]:7.1f} examples/s')
  print(f'  2 workers / 1 worker: {rates[2] / rates[1]:.2f}x')


def main() -> None:
  cli.run(_define_flags, _main, tensorflow=True)


if __name__ == '__main__':
  main()
