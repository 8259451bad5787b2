r"""Benchmark: naming instruments from a sample library never heard.

Usage:
  python -m benchmarks.generalization [--work_dir=SCRATCH]
      [--libraries=timgm6mb,merlin,sf_gmbank] [--pitch_step=4]
      [--velocities=50,100] [--seed_cnn_epochs=15]

Renders the demo notes of every library (or the named ones), then, for each
library in turn, runs the Beam job with --holdout_library (test: that
library's valid and test instruments; train: the other libraries' train
instruments, so neither the library nor the programs were heard; see
README, "Honest splits") and trains and evaluates four recipes side by
side on exactly the same notes:
  * the peer: gradient boosting on per-coefficient MFCC statistics (mean,
    std, max, min, std of the frame-to-frame difference), scikit-learn, on
    the recipe's records (the default features, all 128 coefficients);
  * seed_cnn, the seed recipe's network, on its 20 MFCCs (the same notes
    written again with --num_mfcc=20, librosa's default);
  * the MFCC recipe (timbre_ensemble, the default before the pretrained
    embedding), on the default records;
  * the default recipe: nsynth-tfrecords --augment_copies=RECIPE_COPIES,
    then nsynth-train with its defaults (trainer.train_config.TrainConfig):
    musicnn_ensemble, on the MFCCs and the embedding.
Prints accuracy and macro-F1 per held-out library, accuracy per family, and
the means; then the targets: mean >= 0.78 and >= the MFCC recipe + 0.08.
"""

import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from absl import flags
from sklearn.ensemble import HistGradientBoostingClassifier

from beam_pipelines import augmentation
from demo_data import libraries
from demo_data import notes as demo_notes
from nsynth_contracts import cli
from nsynth_contracts import labels
from nsynth_contracts import manifest as manifest_lib
from nsynth_contracts import schema
from trainer import metrics

# TensorFlow and the trainer are imported inside the functions that use
# them: they log at import, and cli.run quiets them first.


def _define_flags() -> None:
  flags.DEFINE_string(
      'work_dir', os.path.join(tempfile.gettempdir(), 'nsynth-generalization'),
      'Scratch directory (the rendered notes are reused when present).')
  flags.DEFINE_list('libraries', [], 'Libraries to render and hold '
                    'out (default: every one installed that has '
                    'acoustic or electronic instruments).')
  flags.DEFINE_integer('pitch_step', 4, 'Demo pitch step.')
  flags.DEFINE_list('velocities', ['50', '100'],
                    'Demo velocities.')
  flags.DEFINE_integer('seed_cnn_epochs', 15,
                       'Epochs of seed_cnn, the seed recipe\'s network.')
  flags.DEFINE_list('models', list(_MODELS), 'Which of the four to run.')


_MODELS = ('peer', 'seed_cnn', 'mfcc_recipe', 'recipe')


def mfcc_statistics(mfccs: np.ndarray) -> np.ndarray:
  """float [N, frames, coefficients] -> the peer's features [N, 5 * coeffs]."""
  return np.concatenate([mfccs.mean(1), mfccs.std(1), mfccs.max(1),
                         mfccs.min(1), np.diff(mfccs, axis=1).std(1)], axis=1)


def read_records(data_dir: str, split: str, originals_only: bool):
  import tensorflow as tf
  manifest = manifest_lib.read(data_dir)
  files = [os.path.join(data_dir, f) for f in manifest.split_files(split)]
  mfccs, label_ids = [], []
  for batch in tf.data.TFRecordDataset(
      files, compression_type=manifest.tf_compression_type).batch(1024):
    parsed = schema.parse_batch(batch, manifest.mfcc_shape)
    keep = (parsed[schema.AUGMENTATION].numpy() == 0) if originals_only \
        else slice(None)
    mfccs.append(parsed[schema.MFCC].numpy()[keep])
    label_ids.append(parsed[schema.LABEL].numpy()[keep])
  return np.concatenate(mfccs), np.concatenate(label_ids)


def run_peer(data_dir: str) -> tuple[np.ndarray, np.ndarray]:
  """(true ids, predicted ids) on the test split."""
  train_x, train_y = read_records(data_dir, 'train', originals_only=True)
  test_x, test_y = read_records(data_dir, 'test', originals_only=True)
  peer = HistGradientBoostingClassifier(max_iter=300, random_state=0)
  peer.fit(mfcc_statistics(train_x), train_y)
  return test_y, peer.predict(mfcc_statistics(test_x))


def write_records(demo: str, data_dir: str, held_out: str, *extra: str):
  """The Beam job, holding out one library, as a user would run it."""
  subprocess.run(
      [sys.executable, '-m', 'beam_pipelines.nsynth_tfrecords',
       '--input=' + ','.join(os.path.join(demo, f'nsynth-{s}')
                             for s in demo_notes.SPLITS),
       f'--output_dir={data_dir}', '--overwrite', '--compression=none',
       f'--holdout_library={held_out}', *extra,
       '--runner=DirectRunner', '--direct_num_workers=0',
       '--direct_running_mode=multi_threading'],
      check=True, stdout=subprocess.DEVNULL)


def run_trainer(data_dir: str, job_dir: str, **overrides
                ) -> tuple[np.ndarray, np.ndarray]:
  from trainer import train
  from trainer.train_config import TrainConfig
  reports = train.train(TrainConfig(
      data_dir=data_dir, job_dir=job_dir, eval_splits=('valid', 'test'),
      overwrite=True, **overrides))
  confusion = np.array(reports['test']['confusion_matrix'][
      'rows_true_columns_predicted'])
  true_ids = np.repeat(np.arange(len(confusion)), confusion.sum(1))
  predicted = np.concatenate([np.repeat(np.arange(len(row)), row)
                              for row in confusion])
  return true_ids, predicted


def _main(argv: list[str]) -> None:
  cli.no_arguments(argv)
  chosen = [lib.name for lib in libraries.resolve(flags.FLAGS.libraries)
            if lib.only_source is None]
  demo = os.path.join(flags.FLAGS.work_dir, 'demo')
  if not os.path.exists(os.path.join(demo, 'nsynth-test', 'examples.json')):
    demo_notes.render_dataset(demo, flags.FLAGS.pitch_step,
                              [int(v) for v in flags.FLAGS.velocities],
                              chosen)
  families = labels.LabelVocabulary.from_filters().families
  results = {}   # (model, library) -> (true ids, predicted ids)
  for held_out in chosen:
    start = time.perf_counter()
    data_dir = os.path.join(flags.FLAGS.work_dir, held_out, 'records')
    write_records(demo, data_dir, held_out,
                  f'--augment_copies={augmentation.RECIPE_COPIES}')
    if 'peer' in flags.FLAGS.models:
      results[('peer', held_out)] = run_peer(data_dir)
    if 'seed_cnn' in flags.FLAGS.models:
      mfcc20_dir = os.path.join(flags.FLAGS.work_dir, held_out,
                                'records_mfcc20')
      write_records(demo, mfcc20_dir, held_out, '--num_mfcc=20',
                    '--embedding=none')
      results[('seed_cnn', held_out)] = run_trainer(
          mfcc20_dir, os.path.join(flags.FLAGS.work_dir, held_out, 'seed_cnn'),
          model='seed_cnn', epochs=flags.FLAGS.seed_cnn_epochs,
          train_on_augmented=False)
    if 'mfcc_recipe' in flags.FLAGS.models:
      results[('mfcc_recipe', held_out)] = run_trainer(
          data_dir, os.path.join(flags.FLAGS.work_dir, held_out,
                                 'mfcc_recipe'), model='timbre_ensemble')
    if 'recipe' in flags.FLAGS.models:
      results[('recipe', held_out)] = run_trainer(
          data_dir, os.path.join(flags.FLAGS.work_dir, held_out, 'recipe'))
    print(f'held out {held_out}: {time.perf_counter() - start:.0f} s',
          flush=True)

  models = [m for m in _MODELS if m in flags.FLAGS.models]
  print('\nLeave one library out (test: the held-out library\'s valid and test '
        'instruments; never heard, programs never trained on):')
  print(f'  {"held out":<12}' + ''.join(f'{m + " acc":>17}{"F1":>7}'
                                         for m in models))
  means = {m: [] for m in models}
  for held_out in chosen:
    row = f'  {held_out:<12}'
    for m in models:
      true_ids, predicted = results[(m, held_out)]
      accuracy = float((true_ids == predicted).mean())
      f1 = metrics.classification_report(
          true_ids, np.eye(len(families))[predicted], families)['macro_f1']
      means[m].append((accuracy, f1))
      row += f'{accuracy:17.3f}{f1:7.3f}'
    print(row)
  print(f'  {"mean":<12}' + ''.join(
      f'{np.mean([a for a, _ in means[m]]):17.3f}'
      f'{np.mean([f for _, f in means[m]]):7.3f}' for m in models))
  print('\nAccuracy per family (all held-out libraries together):')
  print(f'  {"family":<10}' + ''.join(f'{m:>13}' for m in models))
  for i, family in enumerate(families):
    row = f'  {family:<10}'
    for m in models:
      true_ids = np.concatenate([results[(m, h)][0] for h in chosen])
      predicted = np.concatenate([results[(m, h)][1] for h in chosen])
      rows = true_ids == i
      row += f'{(predicted[rows] == i).mean():13.3f}' if rows.any() else \
          f'{"-":>13}'
    print(row)
  if 'recipe' in models and 'mfcc_recipe' in models:
    recipe = np.mean([a for a, _ in means['recipe']])
    before = np.mean([a for a, _ in means['mfcc_recipe']])
    print(f'\nTargets: recipe mean {recipe:.3f} (>= 0.78: '
          f'{"met" if recipe >= 0.78 else "missed"}); recipe - MFCC recipe '
          f'{recipe - before:+.3f} (>= +0.08: '
          f'{"met" if recipe - before >= 0.08 else "missed"})')


def main() -> None:
  cli.run(_define_flags, _main, tensorflow=True)


if __name__ == '__main__':
  main()
