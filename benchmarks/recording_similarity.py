"""How alike the recordings of two instruments are, from their audio.

General MIDI sample libraries share samples: the same program in two
libraries is often the very same recording. Two instruments are compared on
the notes they both have (same pitch and velocity): for each, the highest
normalised cross-correlation of half a second after the onset, over lags of
+-50 ms; the pair's similarity is the median over their shared notes. The
README's "Honest splits" calls a pair the same recording at 0.9 and above.
"""

import collections
import itertools
from collections.abc import Iterable

import numpy as np

from nsynth_contracts import audio_decoding
from nsynth_contracts import feature_params

SAME_RECORDING = 0.9
_COMPARED_SECONDS = 0.5
_MAX_LAG_SECONDS = 0.05


def _segment(path: str, samples: int, lag: int) -> np.ndarray:
  clip = audio_decoding.read_file(path, feature_params.DEFAULT_PARAMS
                                  .sample_rate_hz).samples
  segment = np.zeros(samples + 2 * lag)
  segment[:min(len(clip), len(segment))] = clip[:len(segment)]
  return segment


class _Spectra:
  """One note's transforms, computed once for all its comparisons: the
  conjugate spectrum and norm of its centre, the spectrum of the whole
  segment, and the running energy of every window of the centre's length."""

  def __init__(self, segment: np.ndarray, samples: int, lag: int, size: int):
    centre = segment[lag:lag + samples]
    self.centre = np.conj(np.fft.rfft(centre, size))
    self.norm = np.linalg.norm(centre) + 1e-12
    self.whole = np.fft.rfft(segment, size)
    energy = np.concatenate([[0.0], np.cumsum(segment ** 2)])
    self.window = np.sqrt(energy[samples:samples + 2 * lag + 1] -
                          energy[:2 * lag + 1]) + 1e-12


def _best_correlation(a: _Spectra, b: _Spectra, lag: int, size: int
                      ) -> float:
  """max over lags of |xcorr| of a's centre with b, normalised by both
  windows' energy."""
  correlation = np.fft.irfft(b.whole * a.centre, size)[:2 * lag + 1]
  return float(np.max(np.abs(correlation) / (a.norm * b.window)))


def similarities(notes: Iterable[tuple[str, int, int, str]],
                 sample_rate_hz: int = feature_params.DEFAULT_PARAMS
                 .sample_rate_hz) -> dict[tuple[str, str], float]:
  """{(instrument a, instrument b), a < b: similarity} for every pair with
  a note in common.

  Args:
    notes: (instrument, pitch, velocity, audio path) of every note.
  """
  samples = int(_COMPARED_SECONDS * sample_rate_hz)
  lag = int(_MAX_LAG_SECONDS * sample_rate_hz)
  size = 1 << int(np.ceil(np.log2(2 * samples + 2 * lag)))
  by_note = collections.defaultdict(list)
  for instrument, pitch, velocity, path in notes:
    by_note[(pitch, velocity)].append((instrument, path))
  scores = collections.defaultdict(list)
  for group in by_note.values():
    # Transforms once per note: the pairs are quadratic in the group.
    spectra = [_Spectra(_segment(path, samples, lag), samples, lag, size)
               for _, path in group]
    for i, j in itertools.combinations(range(len(group)), 2):
      a, b = group[i][0], group[j][0]
      if a == b:
        continue
      score = max(_best_correlation(spectra[i], spectra[j], lag, size),
                  _best_correlation(spectra[j], spectra[i], lag, size))
      scores[tuple(sorted((a, b)))].append(score)
  return {pair: float(np.median(values)) for pair, values in scores.items()}


def same_recordings(pairs: dict[tuple[str, str], float],
                    threshold: float = SAME_RECORDING
                    ) -> dict[str, set[str]]:
  """{instrument: the instruments whose recordings are its own}."""
  same = collections.defaultdict(set)
  for (a, b), score in pairs.items():
    if score >= threshold:
      same[a].add(b)
      same[b].add(a)
  return same
