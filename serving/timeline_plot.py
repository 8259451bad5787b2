"""The picture of a recording's timeline: what the model heard, and when."""

import collections
import hashlib
import os
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from nsynth_contracts import feature_params
from serving import signatures


def png_names(files: Sequence[str]) -> dict[str, str]:
  """A PNG file name per file: its base name, or, for files whose base names
  collide (a/x.wav and b/x.flac), the base name and a short hash of the
  file's absolute path, so that no picture overwrites another. Named over
  every file given, before any is decoded, so that recordings plotted as
  they come never take another's name."""
  stems = [os.path.splitext(os.path.basename(f))[0] for f in files]
  counts = collections.Counter(stems)
  names = {}
  for file, stem in zip(files, stems):
    if counts[stem] > 1:
      path = os.path.abspath(file).encode('utf-8', 'surrogateescape')
      stem = f'{stem}-{hashlib.sha256(path).hexdigest()[:8]}'
    names[file] = f'{stem}.png'
  return names


def plot(waveform: np.ndarray, outputs: dict, title: str, path: str,
         params: feature_params.FeatureParams) -> None:
  """Family probabilities per window over time, above the spectrogram.

  Args:
    waveform: float32 [samples] at params.sample_rate_hz.
    outputs: the long-audio signature's outputs, as NumPy.
    title: the recording's name.
    path: PNG to write.
    params: the export's own feature parameters (its contract).
  """
  families = [f.decode() if isinstance(f, bytes) else f
              for f in outputs[signatures.CLASSES]]
  starts = outputs[signatures.WINDOW_START_SECONDS]
  window_p = outputs[signatures.WINDOW_PROBABILITIES]          # [W, C]
  seconds = len(waveform) / params.sample_rate_hz
  fig = Figure(figsize=(11, 6))
  top, bottom = fig.subplots(2, 1, sharex=True,
                             gridspec_kw={'height_ratios': [3, 2]})
  centres = starts + params.clip_seconds / 2
  shown = [i for i in range(len(families))
           if len(window_p) and window_p[:, i].max() >= 0.1]
  for i in shown:
    top.plot(centres, window_p[:, i], marker='o', label=families[i])
  family = outputs[signatures.FAMILY]
  family = family.decode() if isinstance(family, bytes) else family
  top.set(ylim=(0, 1.05), ylabel='probability (window centre)',
          title=f'{title}: {family}')
  if shown:
    top.legend(loc='upper right', fontsize=8, ncol=min(4, len(shown)))
  top.grid(alpha=0.3)
  # Digital silence is -inf dB: drawn as the floor, not worth a warning.
  with np.errstate(divide='ignore'):
    bottom.specgram(waveform, NFFT=1024, Fs=params.sample_rate_hz,
                    noverlap=512, cmap='magma')
  bottom.set(xlabel='time (s)', ylabel='frequency (Hz)', xlim=(0, seconds))
  fig.tight_layout()
  fig.savefig(path, dpi=100)


def plot_recording(file: str, waveform: np.ndarray, outputs: dict,
                   path: str, params: feature_params.FeatureParams) -> str:
  """`plot` of one recording into `path` (its directory made if needed),
  titled with the file's name; returns `path`."""
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  plot(waveform, outputs, os.path.basename(file), path, params)
  return path
