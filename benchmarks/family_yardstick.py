"""Yardsticks for choosing families of sound to train on (benchmarks.families).

Each scores one training set, the base sample libraries' notes plus added
sources (weighted), with the product's recipe as a linear probe: features
standardised by the training rows' mean and spread (floored at 0.01, as the
trainer floors them), multinomial logistic regression with L2 at
scikit-learn's C. A note is never scored by a probe that trained on its
recording: every training instrument whose recording is a tested one's
(benchmarks.recording_similarity) is left out, whatever its source.

* `recordings_out`: cross-validation by instrument over the base libraries;
  the added sources join every fold's training side.
* `programs_out`: cross-validation by General MIDI program over the base
  libraries: every instrument of a tested program, in any library, is left
  out of training (an instrument never heard in any recording).
* `library_out`: each base library in turn is tested, trained on the other
  base libraries and the added sources: a whole library unheard, as the
  outside evaluation's libraries are.
* `family_out`: trained on every base note and the added sources, tested on
  a family of sounds none of them is (e.g. the `faust` family).
* `unheard_recordings`: the same training, tested on a library's notes whose
  recordings are unlike every trained one (best similarity below a bound).
"""

import dataclasses
import hashlib
from collections.abc import Iterator
from collections.abc import Sequence

import numpy as np

from benchmarks import family_sources
from benchmarks import recording_similarity

STD_FLOOR = 0.01   # the representation's own floor (trainer.embedding_models)


@dataclasses.dataclass(frozen=True)
class Added:
  """One source added to training, all of it or a share, each note weighted.

  Written `source[:<instruments>x<pitch step>][*weight]`, e.g. `stk`,
  `faust:6x8*0.5`: a synthesis family's first `instruments` draws of each
  model, every pitch step-th pitch (of a rendering at a finer step: the
  share of each instrument's pitches), each note weighing `weight`.
  """
  source: str
  instruments: int = 0     # 0: every one
  pitch_step: int = 0      # 0: every pitch rendered
  weight: float = 1.0

  @classmethod
  def parse(cls, text: str) -> 'Added':
    text, _, weight = text.partition('*')
    source, _, sizes = text.partition(':')
    instruments, _, step = sizes.partition('x')
    return cls(source, int(instruments or 0), int(step or 0),
               float(weight or 1.0))


@dataclasses.dataclass(frozen=True)
class TrainingSet:
  """What a probe trains on beside the base libraries' notes."""
  added: tuple[Added, ...] = ()
  c: float = 0.01

  @classmethod
  def parse(cls, text: str, c: float = 0.01) -> 'TrainingSet':
    """'' or 'none': nothing added; else Added terms joined by '+'."""
    if text in ('', 'none'):
      return cls((), c)
    return cls(tuple(Added.parse(t) for t in text.split('+')), c)


@dataclasses.dataclass(frozen=True)
class Scored:
  """Predictions of one yardstick for one training set."""
  tested: np.ndarray      # int [n]: rows of the bank
  predicted: np.ndarray   # int [n]: labels


def fit_predict(x: np.ndarray, y: np.ndarray, weight: np.ndarray,
                tests: Sequence[np.ndarray], c: float) -> list[np.ndarray]:
  """The product's head trained on (x, y) with per-row weights; its labels
  for each of `tests` (float [rows, features] each)."""
  from sklearn.linear_model import LogisticRegression
  mean = x.mean(0)
  scale = np.maximum(x.std(0), STD_FLOOR)
  probe = LogisticRegression(C=c, max_iter=2000, tol=1e-3)
  probe.fit((x - mean) / scale, y, sample_weight=weight)
  return [probe.predict((t - mean) / scale) for t in tests]


def draw_and_pitch_rank(bank: family_sources.Bank
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """int [notes] each: an instrument's position among its model's draws
  (instrument_str numbers follow the draws), a note's among its
  instrument's pitches, and the step between those pitches."""
  draw = np.zeros(len(bank.label), int)
  rank = np.zeros(len(bank.label), int)
  step = np.ones(len(bank.label), int)
  for source, model in set(zip(bank.source, bank.model)):
    rows = np.flatnonzero((bank.source == source) & (bank.model == model))
    names = sorted(set(bank.instrument[rows]),
                   key=lambda name: int(name.rsplit('_', 1)[1]))
    draw[rows] = [names.index(i) for i in bank.instrument[rows]]
  for instrument in np.unique(bank.instrument):
    rows = np.flatnonzero(bank.instrument == instrument)
    pitches = sorted(set(bank.pitch[rows]))
    rank[rows] = [pitches.index(p) for p in bank.pitch[rows]]
    step[rows] = min(np.diff(pitches), default=1)
  return draw, rank, step


@dataclasses.dataclass
class Yardstick:
  """The bank, which sources are the base, and who shares a recording."""
  bank: family_sources.Bank
  base: tuple[str, ...]            # sample libraries every set trains on
  same: dict[str, set[str]]        # instrument -> same-recording ones
  heldout: np.ndarray              # bool [notes]: never trained or tested
  folds: int = 10

  def __post_init__(self):
    self.draw, self.pitch_rank, self.step = draw_and_pitch_rank(self.bank)
    self.digests = {}
    for source in np.unique(self.bank.source):
      rows = self.bank.source == source
      digest = hashlib.sha1(self.bank.features[rows].tobytes())
      digest.update('|'.join(self.bank.instrument[rows]).encode())
      digest.update(self.heldout[rows].tobytes())
      self.digests[str(source)] = digest.hexdigest()

  def key(self, *parts, training: TrainingSet, tested: Sequence[str] = ()
          ) -> str:
    """A name for a score: what it is, and the notes of every source it
    trains or tests on (a re-rendered source gets new names)."""
    sources = sorted({*self.base, *(a.source for a in training.added),
                      *tested})
    text = repr((parts, training, self.folds,
                 [self.digests.get(s, '') for s in sources]))
    return hashlib.sha1(text.encode()).hexdigest()

  def added_rows(self, added: Added) -> np.ndarray:
    """bool [notes]: the notes `added` names."""
    keep = (self.bank.source == added.source) & ~self.heldout
    if added.instruments:
      keep &= self.draw < added.instruments
    if added.pitch_step:
      every = np.maximum(1, added.pitch_step // self.step)
      keep &= self.pitch_rank % every == 0
    return keep

  def training_rows(self, training: TrainingSet,
                     unheard: set[str]) -> tuple[np.ndarray, np.ndarray]:
    """(rows, weights): base and added notes, less the `unheard` and
    their recordings' instruments."""
    bank = self.bank
    left_out = set(unheard).union(*(self.same.get(i, ()) for i in unheard))
    weight = np.where(np.isin(bank.source, list(self.base)) & ~self.heldout,
                      1.0, 0.0)
    for added in training.added:
      weight[self.added_rows(added)] = added.weight
    weight[np.isin(bank.instrument, list(left_out))] = 0.0
    rows = np.flatnonzero(weight > 0)
    return rows, weight[rows]

  def _base_rows(self) -> np.ndarray:
    return np.flatnonzero(np.isin(self.bank.source, list(self.base)) &
                          ~self.heldout)

  def _score(self, training: TrainingSet, splits: Iterator[np.ndarray],
             programs_too: bool = False) -> Scored:
    """Trains once per tested group of rows, leaving their instruments'
    recordings out (and with `programs_too` every instrument of their
    General MIDI programs, in any library)."""
    bank, tested, predicted = self.bank, [], []
    for test in splits:
      unheard = set(bank.instrument[test])
      if programs_too:
        unheard |= set(bank.instrument[np.isin(bank.model, bank.model[test])])
      rows, weight = self.training_rows(training, unheard)
      predicted += fit_predict(bank.features[rows], bank.label[rows], weight,
                               [bank.features[test]], training.c)
      tested.append(test)
    return Scored(np.concatenate(tested), np.concatenate(predicted))

  def recordings_out(self, training: TrainingSet) -> Scored:
    from sklearn.model_selection import GroupKFold
    pool = self._base_rows()
    return self._score(training, (
        pool[test] for _, test in GroupKFold(self.folds).split(
            pool, groups=self.bank.instrument[pool])))

  def programs_out(self, training: TrainingSet) -> Scored:
    from sklearn.model_selection import GroupKFold
    pool = self._base_rows()
    return self._score(training, (
        pool[test] for _, test in GroupKFold(self.folds).split(
            pool, groups=self.bank.model[pool])), programs_too=True)

  def library_out(self, training: TrainingSet) -> Scored:
    pool = self._base_rows()
    return self._score(training, (pool[self.bank.source[pool] == library]
                                  for library in self.base))

  def trained_on_base(self, training: TrainingSet,
                       test: np.ndarray) -> Scored:
    rows, weight = self.training_rows(training, set())
    bank = self.bank
    predicted = fit_predict(bank.features[rows], bank.label[rows], weight,
                            [bank.features[test]], training.c)[0]
    return Scored(test, predicted)

  def heldout_scores(self, training: TrainingSet) -> Scored:
    """Trained once on everything but the held-out instruments and their
    recordings; tested on the held-out."""
    test = np.flatnonzero(self.heldout)
    rows, weight = self.training_rows(training,
                                       set(self.bank.instrument[test]))
    bank = self.bank
    return Scored(test, fit_predict(bank.features[rows], bank.label[rows],
                                    weight, [bank.features[test]],
                                    training.c)[0])

  def family_out(self, training: TrainingSet, family: str) -> Scored:
    return self.trained_on_base(
        training, np.flatnonzero(self.bank.source == family))

  def unheard_recordings(self, training: TrainingSet, library: str,
                         pairs: dict[tuple[str, str], float],
                         below: float) -> Scored:
    """`library`'s notes whose instrument's best similarity to any base
    instrument is below `below`."""
    bank = self.bank
    trained = set(bank.instrument[self._base_rows()])
    best = {}
    for (a, b), score in pairs.items():
      for mine, other in ((a, b), (b, a)):
        if other in trained:
          best[mine] = max(best.get(mine, 0.0), score)
    test = np.flatnonzero((bank.source == library) & np.array(
        [best.get(i, 0.0) < below for i in bank.instrument]))
    return self.trained_on_base(training, test)


def same_recordings(pairs: dict[tuple[str, str], float]
                    ) -> dict[str, set[str]]:
  return recording_similarity.same_recordings(pairs)


def accuracy(bank: family_sources.Bank, scored: Scored) -> float:
  """Mean over the tested notes' sources of each source's accuracy."""
  right = scored.predicted == bank.label[scored.tested]
  sources = bank.source[scored.tested]
  return float(np.mean([right[sources == s].mean()
                        for s in np.unique(sources)]))


def recalls(bank: family_sources.Bank, scored: Scored) -> dict[str, float]:
  """Per family: the share of its tested notes named right."""
  truth = bank.label[scored.tested]
  return {family: float(np.mean(scored.predicted[truth == k] == k))
          for k, family in enumerate(family_sources.FAMILIES)
          if np.any(truth == k)}


def paired_gain(bank: family_sources.Bank, a: Scored, b: Scored,
                draws: int = 1000) -> tuple[float, float]:
  """b's accuracy less a's on the same notes, and its standard error over
  tested instruments drawn with replacement."""
  order_a, order_b = np.argsort(a.tested), np.argsort(b.tested)
  assert np.array_equal(a.tested[order_a], b.tested[order_b])
  rows = a.tested[order_a]
  truth = bank.label[rows]
  gain = ((b.predicted[order_b] == truth).astype(float) -
          (a.predicted[order_a] == truth))
  names, index = np.unique(bank.instrument[rows], return_inverse=True)
  per_instrument, counts = np.bincount(index, gain), np.bincount(index)
  rng = np.random.default_rng(0)
  boot = []
  for _ in range(draws):
    chosen = rng.integers(0, len(names), len(names))
    boot.append(per_instrument[chosen].sum() / counts[chosen].sum())
  return float(gain.mean()), float(np.std(boot))
