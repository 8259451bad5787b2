"""Randomness that depends only on a key: the same on every run and worker.

Splits, caps, augmentation chains and the demo's phrases are drawn from a
SHA-256 of a stable key (a note_str, a file name, a seed and a copy index),
never from Python's salted hash() or a generator shared between workers, so
a job writes the same records whichever worker handles a note, and in
whatever order.
"""

import hashlib

import numpy as np


def _digest(key: str) -> bytes:
  return hashlib.sha256(key.encode('utf-8')).digest()


def generator(key: str) -> np.random.Generator:
  """A NumPy generator seeded by `key` alone."""
  return np.random.default_rng(int.from_bytes(_digest(key)[:8], 'little'))


def unit_interval(key: str) -> float:
  """A uniform number in [0, 1) for `key`."""
  return int.from_bytes(_digest(key)[:8], 'big') / 2.0**64
