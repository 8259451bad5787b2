"""The version directories of an exported model, as TF Serving reads them.

TF Serving serves `<export_base>/<model_name>/<version>/` and loads only
integer versions (it ignores `v1` or `0.1`); versions only grow, and an
existing one is never overwritten.
"""

import re

import tensorflow as tf


def existing_versions(model_dir: str) -> list[int]:
  """Integer version directories (local or gs://), in order."""
  if not tf.io.gfile.isdir(model_dir):
    return []
  return sorted(int(name.rstrip('/')) for name in tf.io.gfile.listdir(model_dir)
                if re.fullmatch(r'\d+/?', name))


def next_version(model_dir: str) -> int:
  versions = existing_versions(model_dir)
  return versions[-1] + 1 if versions else 1
