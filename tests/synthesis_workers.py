"""Synthesis run for a test in a process of its own.

The test session imports TensorFlow, and Faust's toolkit crashes any
process that has (demo_data.faust_models.ToolkitConflictError says so
before it can). These functions run in spawned workers, so this module
imports nothing that imports TensorFlow.
"""

import concurrent.futures
import dataclasses
import multiprocessing

import numpy as np

from demo_data import synthesis


def _render(family: str, name: str, seed: int, notes, sliders) -> list:
  model = synthesis.family_model(family, name)
  controls = model.draw(np.random.default_rng(seed))
  if sliders is not None:
    controls = dataclasses.replace(controls, slider_values=sliders)
  return [model.render(controls, pitch, velocity)
          for pitch, velocity in notes]


def render(family: str, name: str, seed: int,
           notes: list[tuple[int, int]], sliders=None) -> list[np.ndarray]:
  """Model `name`'s instrument drawn from `seed` (its sliders replaced by
  `sliders` if given), playing each (pitch, velocity) of `notes`."""
  with concurrent.futures.ProcessPoolExecutor(
      max_workers=1, mp_context=multiprocessing.get_context('spawn')) as pool:
    return pool.submit(_render, family, name, seed, notes, sliders).result()
