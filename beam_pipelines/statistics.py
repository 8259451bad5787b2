"""Per-column statistics of the training split's features, for normalising.

The trainer's models normalise their inputs with these (the manifest carries
them): for the MFCCs over every frame of every training record, for the
representations over every training record, exactly, in one pass.
"""

import apache_beam as beam
import numpy as np


class FeatureStatisticsFn(beam.CombineFn):
  """Per-column mean and standard deviation over all rows of the last axis.

  Accumulates (count, mean, M2) and merges with Chan et al.'s parallel
  update, which stays accurate where sum-of-squares would cancel (c0 is in
  the hundreds).
  """

  def create_accumulator(self):
    return 0, None, None

  @staticmethod
  def _merge(a, b):
    n_a, mean_a, m2_a = a
    n_b, mean_b, m2_b = b
    if n_a == 0:
      return b
    if n_b == 0:
      return a
    n = n_a + n_b
    delta = mean_b - mean_a
    mean = mean_a + delta * (n_b / n)
    m2 = m2_a + m2_b + delta**2 * (n_a * n_b / n)
    return n, mean, m2

  def add_input(self, accumulator, mfccs):
    # [..., columns]: a note's MFCCs, a batch's, or a batch's embeddings.
    mfccs = np.asarray(mfccs, dtype=np.float64)
    frames = mfccs.reshape(-1, mfccs.shape[-1])
    mean = frames.mean(axis=0)
    m2 = ((frames - mean)**2).sum(axis=0)
    return self._merge(accumulator, (frames.shape[0], mean, m2))

  def merge_accumulators(self, accumulators):
    result = self.create_accumulator()
    for accumulator in accumulators:
      result = self._merge(result, accumulator)
    return result

  def extract_output(self, accumulator):
    n, mean, m2 = accumulator
    if n == 0:
      return None
    return {'num_frames': int(n), 'mean': mean.tolist(),
            'std': np.sqrt(m2 / n).tolist()}
