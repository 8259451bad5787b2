r"""Benchmark: the input pipeline alone vs training throughput of each model.

Usage:
  python -m benchmarks.trainer_throughput [--data_dir=data/tfrecords]
      [--batch_size=64] [--seconds=20]

Measures, on the Beam job's TFRecords, in one run:
  (a) the input pipeline alone: examples per second from the shard files to
      parsed, batched tensors, three ways: from disk as written (GZIP level
      1 by default), from disk re-written at GZIP level 0 (stored blocks), and
      from the in-memory cache (--cache=memory, which --cache=auto picks when
      the records fit);
  (b) training throughput of each model (Keras train steps on batches already
      in memory, so the input pipeline is not in (b)).
Prints a/b per model (target >= 20: input never limits training) and
seed_cnn's examples per second per core beside the seed recipe's 9,460
examples per minute on an 8-core desktop.
"""

import os
import tempfile
import time

from absl import flags

from nsynth_common import cli
from nsynth_contracts import dataset_versions
from nsynth_contracts import manifest as manifest_lib

# TensorFlow and the trainer are imported inside the functions that use
# them: they log at import, and cli.run quiets them first.

SEED_RECIPE_EXAMPLES_PER_MINUTE = 9460
SEED_RECIPE_CORES = 8


def _define_flags() -> None:
  flags.DEFINE_string('data_dir', 'data/tfrecords',
                      'A beam_pipelines.nsynth_tfrecords output.')
  flags.DEFINE_integer('batch_size', 64, 'Batch size.')
  flags.DEFINE_float('seconds', 20.0, 'Time per measurement.')


def rewrite_stored(files, out_dir):
  """The same records in GZIP files with level 0 (stored, no deflate)."""
  import tensorflow as tf
  os.makedirs(out_dir, exist_ok=True)
  options = tf.io.TFRecordOptions(compression_type='GZIP',
                                  compression_level=0)
  rewritten = []
  for path in files:
    target = os.path.join(out_dir, os.path.basename(path))
    with tf.io.TFRecordWriter(target, options) as writer:
      for record in tf.data.TFRecordDataset(path, compression_type='GZIP'):
        writer.write(record.numpy())
    rewritten.append(target)
  return rewritten


def input_pipeline_rate(files, manifest, batch_size, seconds, cache='none'):
  from trainer import input_pipeline
  dataset = input_pipeline.make_dataset(files, manifest, batch_size,
                                        shuffle=True, seed=0,
                                        cache=cache).repeat()
  iterator = iter(dataset)
  if cache != 'none':  # one pass fills it; the trainer's later epochs read it
    for _ in range(-(-manifest.splits['train'].num_examples // batch_size)):
      next(iterator)
  next(iterator)  # start the threads
  examples, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds:
    mfcc, _ = next(iterator)
    examples += int(mfcc.shape[0])
  return examples / (time.perf_counter() - start)


def training_rate(model_name, data_dir, manifest, batch_size, seconds):
  import keras

  from trainer import input_pipeline
  from trainer import recipes
  files = input_pipeline.split_files(data_dir, manifest, 'train')
  batches = list(input_pipeline.make_dataset(
      files, manifest, batch_size, drop_remainder=True).take(8))
  model = recipes.build(model_name, manifest)
  model.compile(optimizer=keras.optimizers.Adam(1e-3),
                loss=keras.losses.CategoricalCrossentropy(),
                metrics=['accuracy'])
  model.train_on_batch(*batches[0])  # trace and build the optimizer
  examples, start, i = 0, time.perf_counter(), 0
  while time.perf_counter() - start < seconds:
    model.train_on_batch(*batches[i % len(batches)])
    examples += batch_size
    i += 1
  return examples / (time.perf_counter() - start)


def _main(argv: list[str]) -> None:
  cli.no_arguments(argv)
  from trainer import input_pipeline
  data_dir = dataset_versions.resolve_data_dir(flags.FLAGS.data_dir)
  manifest = manifest_lib.read(data_dir)
  batch, seconds = flags.FLAGS.batch_size, flags.FLAGS.seconds
  cores = os.cpu_count()
  files = input_pipeline.split_files(data_dir, manifest, 'train')
  rates = {
      'disk': input_pipeline_rate(files, manifest, batch, seconds),
      'disk-level0': input_pipeline_rate(
          rewrite_stored(files, tempfile.mkdtemp()), manifest, batch,
          seconds),
      'cache': input_pipeline_rate(
          files, manifest, batch, seconds, cache='memory'),
  }
  described = {'disk': 'from disk as written',
               'disk-level0': 'from disk, rewritten at GZIP level 0',
               'cache': 'from the cache in memory'}
  for how, rate in rates.items():
    print(f'(a) input pipeline {how:<11}: {rate:9.1f} examples/s '
          f'({described[how]}; parsed batches of {batch})', flush=True)
  for name in ('seed_cnn', 'timbre_tcn'):
    rate_b = training_rate(name, data_dir, manifest, batch, seconds)
    ratios = ', '.join(f'{how} {rate / rate_b:.1f}'
                       for how, rate in rates.items())
    print(f'(b) train {name:<10}: {rate_b:7.1f} examples/s  '
          f'a/b: {ratios} (target >= 20)', flush=True)
    if name == 'seed_cnn':
      seed = SEED_RECIPE_EXAMPLES_PER_MINUTE / 60 / SEED_RECIPE_CORES
      print(f'    seed_cnn per core here: {rate_b / cores:.1f} examples/s '
            f'({cores} cores); the seed recipe: {seed:.1f} examples/s per '
            f'core ({SEED_RECIPE_EXAMPLES_PER_MINUTE}/min on '
            f'{SEED_RECIPE_CORES} cores)')


def main() -> None:
  cli.run(_define_flags, _main, tensorflow=True)


if __name__ == '__main__':
  main()
