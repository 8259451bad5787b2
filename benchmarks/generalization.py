r"""Benchmark: naming the family of recordings training never heard.

Usage:
  python -m benchmarks.generalization [--work_dir=SCRATCH]
      [--libraries=timgm6mb,merlin,sf_gmbank] [--pitch_step=4]
      [--velocities=50,100] [--folds=10] [--calibrate]
      [--augment_copies=0,2] [--recipes=embedding_linear,embedding_mlp]

The yardstick of BUILD_NOTES.md, "Choosing by what transfers". The sample
libraries we may use are one family of sounds, and many of their programs are
the very same recordings, so in-family validation rewards what transfers
worst. Here every test note is of a recording no training note shares:

 1. renders the demo notes of every installed library (or the named ones);
 2. runs the Beam job on all of them as a user would, every note in one
    training split (--split_single_input=instrument --split_fractions=1,0,0),
    with --augment_copies if asked and, with --calibrate, the
    representations the calibration compares;
 3. compares every two instruments' recordings (benchmarks.
    recording_similarity);
 4. cross-validates over instruments: each fold tests a share of them and
    trains on the others, less every instrument whose recordings are a tested
    one's (similarity >= 0.9).

It scores, on the same folds:
 * with --calibrate, linear probes (standardised features, logistic
   regression C 0.01, scikit-learn) on seven representations, beside their
   accuracy on two realistic sample libraries this project never uses: the
   yardstick must rank them alike before it decides anything;
 * each of --recipes: nsynth-train's model of that name with its default
   budget (trainer.train_config.TrainConfig), trained on each fold's notes
   (and each number of --augment_copies of them) and kept at its last
   epoch.
Prints accuracy and macro-F1 per library and their mean, and each recipe
against the first with the standard error of the difference.
"""

import dataclasses
import json
import os
import tempfile
import time

import numpy as np
from absl import flags

from benchmarks import bench_records
from benchmarks import recording_similarity
from demo_data import libraries
from demo_data import notes as demo_notes
from nsynth_common import cli
from nsynth_contracts import labels
from nsynth_contracts import manifest as manifest_lib
from nsynth_contracts import schema
from trainer import metrics
from trainer import model_names

# Linear probes on these, measured on the notes of two realistic General
# MIDI sample libraries this project never uses (the mean of the two; the
# probes trained on the demo's 3,150 training notes): the column a yardstick
# must reproduce.
UNHEARD_LIBRARIES = {
    'MFCC statistics': 0.342,
    'MSD temporal, 4 statistics': 0.461,
    'MTT penultimate': 0.537,
    'MSD mid-end, 4 statistics': 0.542,
    'MTT mid-end, mean and max': 0.576,
    'MTT mid-end, 4 statistics': 0.589,
    'MTT + MSD mid-end, 4 statistics': 0.593,
}
_CALIBRATION_EMBEDDING = ('MTT_musicnn:midend,MSD_musicnn:midend,'
                          'MTT_musicnn:penultimate')
_MIDEND_CHANNELS = 753
_TEMPORAL_CHANNELS = slice(408, 561)   # of the mid-end's channels
_STATISTICS = 4


def _define_flags() -> None:
  flags.DEFINE_string(
      'work_dir', os.path.join(tempfile.gettempdir(), 'nsynth-generalization'),
      'Scratch directory (rendered notes, records and similarities are '
      'reused when present).')
  flags.DEFINE_list('libraries', [], 'Libraries to render (default: every '
                    'one installed that has acoustic or electronic '
                    'instruments).')
  flags.DEFINE_integer('pitch_step', 4, 'Demo pitch step.', lower_bound=1)
  flags.DEFINE_list('velocities', ['50', '100'], 'Demo velocities.')
  flags.DEFINE_integer('folds', 10, 'Cross-validation folds.', lower_bound=2)
  flags.DEFINE_boolean('calibrate', False, 'Also rank seven representations '
                       'with linear probes beside the unheard libraries.')
  flags.DEFINE_list('augment_copies', ['0'], 'Augmented copies of each note '
                    'in training (the Beam job\'s --augment_copies), one '
                    'score of each recipe per number given.')
  flags.DEFINE_list('recipes', [model_names.EMBEDDING_LINEAR],
                    f'nsynth-train models to score, of '
                    f'{", ".join(model_names.MODEL_NAMES)}.')
  flags.DEFINE_integer('epochs', None, 'The recipes\' epochs (default: '
                       'nsynth-train\'s).', lower_bound=1)


def render(work_dir: str, chosen: list[str]) -> str:
  """Every rendered note in one NSynth split directory; returns it."""
  demo = os.path.join(work_dir, 'demo')
  if not os.path.exists(os.path.join(demo, 'nsynth-test', 'examples.json')):
    demo_notes.render_dataset(demo, flags.FLAGS.pitch_step,
                              [int(v) for v in flags.FLAGS.velocities], chosen)
  every = os.path.join(work_dir, 'all', 'nsynth-all')
  if not os.path.exists(os.path.join(every, 'examples.json')):
    os.makedirs(os.path.join(every, 'audio'), exist_ok=True)
    entries = {}
    for split in demo_notes.SPLITS:
      split_dir = os.path.join(demo, f'nsynth-{split}')
      with open(os.path.join(split_dir, 'examples.json')) as f:
        entries.update(json.load(f))
      for name in os.listdir(os.path.join(split_dir, 'audio')):
        target = os.path.join(every, 'audio', name)
        if not os.path.exists(target):
          os.link(os.path.join(split_dir, 'audio', name), target)
    with open(os.path.join(every, 'examples.json'), 'w') as f:
      json.dump(entries, f)
  return every


def recording_pairs(split_dir: str, work_dir: str) -> dict:
  return bench_records.recording_pairs(
      bench_records.split_entries(split_dir),
      os.path.join(work_dir, 'similarity.json'))


def folds(notes: bench_records.Notes, pairs: dict, count: int):
  """(train rows, test rows) per fold: test rows are notes as read; no
  train row shares a recording with a tested instrument."""
  from sklearn.model_selection import GroupKFold
  same = recording_similarity.same_recordings(pairs)
  originals = np.flatnonzero(notes.copy == 0)
  for _, test in GroupKFold(count).split(
      originals, groups=notes.instrument[originals]):
    tested = set(notes.instrument[originals[test]])
    heard = tested.union(*(same[i] for i in tested))
    yield (np.flatnonzero(~np.isin(notes.instrument, list(heard))),
           originals[test])


def probe_features(notes: bench_records.Notes) -> dict[str, np.ndarray]:
  """The seven representations the unheard libraries ranked."""
  mfcc = notes.features[schema.MFCC]
  mtt = notes.features['mtt_musicnn_midend']
  msd = notes.features['msd_musicnn_midend']
  temporal = np.concatenate([
      msd[:, s * _MIDEND_CHANNELS:(s + 1) * _MIDEND_CHANNELS][
          :, _TEMPORAL_CHANNELS] for s in range(_STATISTICS)], axis=1)
  return {
      'MFCC statistics': np.concatenate([mfcc.mean(1), mfcc.std(1),
                                         mfcc.max(1), mfcc.min(1)], axis=1),
      'MSD temporal, 4 statistics': temporal,
      'MTT penultimate': notes.features['mtt_musicnn_penultimate'],
      'MSD mid-end, 4 statistics': msd,
      'MTT mid-end, mean and max': mtt[:, :2 * _MIDEND_CHANNELS],
      'MTT mid-end, 4 statistics': mtt,
      'MTT + MSD mid-end, 4 statistics': np.concatenate([mtt, msd], axis=1),
  }


def probe_predictions(notes: bench_records.Notes, splits
                      ) -> dict[str, np.ndarray]:
  from sklearn.linear_model import LogisticRegression
  from sklearn.pipeline import make_pipeline
  from sklearn.preprocessing import StandardScaler
  predicted = {}
  for name, x in probe_features(notes).items():
    start = time.perf_counter()
    out = np.zeros_like(notes.label)
    for train, test in splits:
      probe = make_pipeline(StandardScaler(),
                            LogisticRegression(C=0.01, max_iter=3000))
      out[test] = probe.fit(x[train], notes.label[train]).predict(x[test])
    predicted[name] = out
    print(f'  probe on {name}: {time.perf_counter() - start:.0f} s',
          flush=True)
  return predicted


def _fold_manifest(manifest: manifest_lib.Manifest,
                   notes: bench_records.Notes,
                   train: np.ndarray) -> manifest_lib.Manifest:
  """The manifest as the Beam job would have written it for this fold's
  training rows: their count and their statistics."""
  def statistics(values):
    values = values.reshape(-1, values.shape[-1]).astype(np.float64)
    return manifest_lib.Normalization('train', len(values),
                                      values.mean(0).tolist(),
                                      values.std(0).tolist())
  splits = dict(manifest.splits)
  splits['train'] = dataclasses.replace(splits['train'],
                                        num_examples=len(train))
  return dataclasses.replace(
      manifest, splits=splits,
      normalization=statistics(notes.features[schema.MFCC][train]),
      representations=tuple(
          dataclasses.replace(r, normalization=statistics(
              notes.features[r.key][train]))
          for r in manifest.representations))


def recipe_predictions(name: str, notes: bench_records.Notes,
                       manifest: manifest_lib.Manifest, splits,
                       epochs: int | None, copies: int) -> np.ndarray:
  """The trainer's model `name`, its default budget, its last epoch,
  trained on the notes and `copies` augmented copies of each."""
  import keras
  import tensorflow as tf

  from trainer import layers
  from trainer import recipes
  from trainer.train_config import TrainConfig
  config = TrainConfig(data_dir='', job_dir='', model=name)
  out = np.zeros_like(notes.label)
  for train, test in splits:
    train = train[notes.copy[train] <= copies]
    keras.utils.set_random_seed(config.seed)
    model = recipes.build(name, _fold_manifest(manifest, notes, train))
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                  loss=keras.losses.CategoricalCrossentropy())
    def inputs(rows, model=model):
      return layers.member_inputs(model, {
          k: notes.features[k][rows] for k in layers.input_names(model)})
    one_hot = np.eye(manifest.vocabulary.num_classes)[notes.label[train]]
    data = tf.data.Dataset.from_tensor_slices((inputs(train), one_hot))
    model.fit(data.shuffle(len(train), seed=config.seed)
              .batch(config.batch_size), epochs=epochs or config.epochs,
              verbose=0)
    # Called eagerly in batches: Keras' predict would trace per fold.
    out[test] = np.concatenate([
        np.asarray(model(inputs(chunk), training=False)).argmax(-1)
        for chunk in np.array_split(test, max(1, len(test) // 256))])
  return out


def print_scores(predicted: dict[str, np.ndarray], notes: bench_records.Notes,
                 tested: np.ndarray) -> dict[str, float]:
  families = labels.LabelVocabulary.from_filters().families
  libraries_of = np.array([bench_records.library_of(i)
                           for i in notes.instrument])
  names = sorted(set(libraries_of[tested]))
  print(f'  {"":<34}' + ''.join(f'{n:>11}' for n in names) +
        f'{"mean":>8}{"F1":>7}')
  means = {}
  for what, out in predicted.items():
    right = out[tested] == notes.label[tested]
    per_library = [right[libraries_of[tested] == n].mean() for n in names]
    means[what] = float(np.mean(per_library))
    f1 = metrics.classification_report(
        notes.label[tested], np.eye(len(families))[out[tested]],
        families)['macro_f1']
    print(f'  {what:<34}' + ''.join(f'{a:11.3f}' for a in per_library) +
          f'{means[what]:8.3f}{f1:7.3f}')
  return means


def print_differences(predicted: dict[str, np.ndarray],
                      notes: bench_records.Notes, tested: np.ndarray,
                      draws: int = 1000) -> None:
  """Each recipe against the first, on the same notes: the difference of
  their accuracies, with its standard error over instruments drawn with
  replacement (notes of one instrument are not independent)."""
  recipes = [what for what in predicted if what.startswith('recipe')]
  if len(recipes) < 2:
    return
  right = {what: predicted[what][tested] == notes.label[tested]
           for what in recipes}
  instruments = notes.instrument[tested]
  names, index = np.unique(instruments, return_inverse=True)
  rng = np.random.default_rng(0)
  print(f'\nAgainst {recipes[0]} (paired, standard error over '
        f'{len(names)} instruments redrawn {draws} times):')
  for what in recipes[1:]:
    gain = right[what].astype(float) - right[recipes[0]]
    per_instrument = np.bincount(index, gain)
    counts = np.bincount(index)
    boot = []
    for _ in range(draws):
      chosen = rng.integers(0, len(names), len(names))
      boot.append(per_instrument[chosen].sum() / counts[chosen].sum())
    print(f'  {what:<40}{gain.mean():+8.3f} +- {np.std(boot):.3f}')


def print_calibration(means: dict[str, float]) -> None:
  from scipy import stats
  names = list(UNHEARD_LIBRARIES)
  ours = [means[n] for n in names]
  theirs = [UNHEARD_LIBRARIES[n] for n in names]
  rank = stats.rankdata(ours)
  print(f'\n  {"representation":<34}{"here":>7}{"rank":>6}'
        f'{"unheard libraries":>19}{"rank":>6}')
  for n, a, r, u, ur in zip(names, ours, rank, theirs,
                            stats.rankdata(theirs)):
    print(f'  {n:<34}{a:7.3f}{r:6.0f}{u:19.3f}{ur:6.0f}')
  print(f'  rank agreement: Spearman {stats.spearmanr(ours, theirs)[0]:+.2f}, '
        f'Kendall {stats.kendalltau(ours, theirs)[0]:+.2f}')


def _main(argv: list[str]) -> None:
  cli.no_arguments(argv)
  values = flags.FLAGS
  chosen = [lib.name for lib in libraries.resolve(values.libraries)
            if lib.only_source is None]
  work = values.work_dir
  start = time.perf_counter()
  split_dir = render(work, chosen)
  embedding = (_CALIBRATION_EMBEDDING if values.calibrate else '')
  copies = sorted({int(c) for c in values.augment_copies})
  data_dir = os.path.join(
      work, f'records-copies{copies[-1]}' +
      ('-calibration' if values.calibrate else ''))
  bench_records.write_records(split_dir, data_dir, embedding, copies[-1])
  notes, manifest = bench_records.read_notes(data_dir)
  pairs = recording_pairs(split_dir, work)
  splits = list(folds(notes, pairs, values.folds))
  tested = np.concatenate([test for _, test in splits])
  instruments = set(notes.instrument)
  unused = np.mean([len(instruments - set(notes.instrument[train]) -
                        set(notes.instrument[test]))
                    for train, test in splits])
  print(f'{len(tested)} notes of {len(instruments)} instruments '
        f'({", ".join(chosen)}), {values.folds} folds; each leaves '
        f'{unused:.0f} instruments out of training for sharing a tested '
        f'one\'s recordings (set up in {time.perf_counter() - start:.0f} s)',
        flush=True)
  predicted = {}
  if values.calibrate:
    predicted.update(probe_predictions(notes, splits))
  for name in values.recipes:
    for count in copies:
      what = f'recipe {name}' + (f' + {count} copies' if count else '')
      begun = time.perf_counter()
      predicted[what] = recipe_predictions(name, notes, manifest, splits,
                                           values.epochs, count)
      print(f'  {what}: {time.perf_counter() - begun:.0f} s', flush=True)
  print('\nAccuracy on recordings training never heard, by library:')
  means = print_scores(predicted, notes, tested)
  print_differences(predicted, notes, tested)
  if values.calibrate:
    print_calibration(means)


def main() -> None:
  cli.run(_define_flags, _main, tensorflow=True)


if __name__ == '__main__':
  main()
