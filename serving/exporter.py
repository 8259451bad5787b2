"""Exporting a trained model as a SavedModel for TF Serving.

`export_job(job_dir, export_base)` writes `<export_base>/<model_name>/
<version>/` (saved_model.pb, variables/, assets.extra/
tf_serving_warmup_requests) with the next integer version; an existing
version is never touched. The signatures are built from the export's
contract (serving.signatures), the export is reloaded and checked
(serving.export_check) before it is copied into its version, saved_model.pb
last, and a failed export removes the directories it created.
serving.export is its command.
"""

import contextlib
import logging
import os
import posixpath
import re
import uuid
from collections.abc import Callable

import keras
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from nsynth_common import directory_lock
from nsynth_contracts import clip_features
from nsynth_contracts import dataset_versions
from nsynth_contracts import manifest as manifest_lib
from nsynth_contracts import serving_contract
from nsynth_contracts.clip_features import ClipFeatures
from serving import export_check
from serving import naming
from serving import signatures
from serving import versions
from serving import warmup
from trainer import job_layout
from trainer import layers
from trainer import models


class ExportError(ValueError):
  """The export cannot be made as asked; the message says why."""


def check_model_name(name: str) -> str:
  """Returns `name` if TF Serving can serve a model under it.

  Raises:
    ExportError: a name that is empty, starts with a dot, or holds a path
      separator or other characters TF Serving's model names do not use.
  """
  if not naming.is_model_name(name):
    raise ExportError(f'model name {name!r} {naming.MESSAGE} (TF Serving '
                      f'serves <export_base>/<model_name>/<version>/)')
  return name


def models_config(model_name: str, base_path: str) -> str:
  """A TF Serving --model_config_file for this model: its own
  ModelServerConfig proto, in text format."""
  config = model_server_config_pb2.ModelServerConfig()
  model = config.model_config_list.config.add()
  model.name = check_model_name(model_name)
  model.base_path = base_path
  model.model_platform = 'tensorflow'
  return text_format.MessageToString(config)


def _write_saved_model(model: keras.Model,
                       contract: serving_contract.ServingContract,
                       features_of: ClipFeatures,
                       bfloat16_features_of: ClipFeatures | None,
                       path: str) -> None:
  archive = keras.export.ExportArchive()
  archive.track(model)
  for network in features_of.networks.values():  # into the SavedModel too
    archive.track(network)
  for network in (bfloat16_features_of.networks.values()
                  if bfloat16_features_of else ()):
    archive.track(network)
  for name, function in signatures.make_serving_functions(
      model, contract, features_of, bfloat16_features_of).items():
    archive.add_endpoint(name, function)
  archive.write_out(path, verbose=False)


def export_model(model: keras.Model, manifest: manifest_lib.Manifest,
                 export_base: str, model_name: str = naming.DEFAULT_MODEL_NAME,
                 say: Callable[[str], None] = lambda _: None) -> str:
  """Writes, checks and publishes the next version; returns its path.

  The model directory is locked while a version is written, so two exports
  never race for one version number; a staging directory left by a killed
  export is removed.

  Raises:
    ExportError: the model name, or the export base, cannot be used, or
      the model holds NaN or Inf.
  """
  model_dir = os.path.join(export_base, check_model_name(model_name))
  refuse_non_finite(model, 'the model')
  if directory_lock.is_remote(model_dir):
    tf.io.gfile.makedirs(model_dir)
  elif os.path.exists(export_base) and not os.path.isdir(export_base):
    raise ExportError(f'--export_base {export_base} is a file, not a '
                      f'directory')
  created = _missing_directories(model_dir)
  try:
    with directory_lock.claimed(model_dir, 'model directory', ExportError):
      for name in tf.io.gfile.listdir(model_dir):
        if re.fullmatch(r'\.staging-[0-9a-f]{12}/?', name):
          logging.warning('Removing %s, left by an export that did not '
                          'finish', name)
          tf.io.gfile.rmtree(os.path.join(model_dir, name.rstrip('/')))
      return _publish(model, manifest, model_dir, model_name, say)
  except BaseException:
    _remove_if_empty(created)
    raise


def refuse_non_finite(model: keras.Model, source: str) -> None:
  """Raises ExportError naming `source` if a weight holds NaN or Inf: such
  a model answers NaN, or nothing that means anything."""
  bad = models.non_finite_weight(model)
  if bad:
    raise ExportError(f'{source} holds NaN or Inf in its weights (first '
                      f'{bad}); it cannot be served: train again')


def _missing_directories(directory: str) -> list[str]:
  """The local directories, deepest first, that creating `directory`
  would create."""
  missing = []
  while (not directory_lock.is_remote(directory) and directory and
         not os.path.exists(directory)):
    missing.append(directory)
    parent = os.path.dirname(directory.rstrip(os.sep))
    if parent == directory:
      break
    directory = parent
  return missing


def _remove_if_empty(directories: list[str]) -> None:
  """A failed export leaves no directory it created behind (deepest first;
  one that something else has filled since is kept)."""
  for directory in directories:
    try:
      os.rmdir(directory)
    except OSError:
      return


def _features_of(model: keras.Model, manifest: manifest_lib.Manifest
                 ) -> tuple[ClipFeatures, ClipFeatures | None]:
  """What the model reads, with the representations' networks built from
  the installed weights (the data's, checked by SHA-256): in float32, and
  in bfloat16 when it reads any (None when not).

  Raises:
    ExportError: a representation's weights are missing, damaged or not
      the data's.
  """
  try:
    names = layers.input_names(model)
    exact = ClipFeatures.for_inputs(names, manifest)
    return exact, (ClipFeatures.for_inputs(names, manifest, 'bfloat16')
                   if exact.networks else None)
  except clip_features.RepresentationWeightsError as e:
    raise ExportError(f'the model reads a pretrained representation, and '
                      f'{e}') from None


def _publish(model: keras.Model, manifest: manifest_lib.Manifest,
             model_dir: str, model_name: str,
             say: Callable[[str], None]) -> str:
  staging = os.path.join(model_dir, f'.staging-{uuid.uuid4().hex[:12]}')
  try:
    contract = signatures.contract_for(manifest)
    features_of, bfloat16_features_of = _features_of(model, manifest)
    say('Writing the SavedModel: the model, '
        + ''.join(f'the {key} network, ' for key in features_of.networks)
        + 'the features and the signatures'
        + (' (and their bfloat16 twins)' if bfloat16_features_of else ''))
    _write_saved_model(model, contract, features_of, bfloat16_features_of,
                       staging)
    extra = os.path.join(staging, 'assets.extra')
    tf.io.gfile.makedirs(extra)
    params = contract.feature_params
    warmup.write(os.path.join(extra, warmup.WARMUP_FILE),
                 warmup.warmup_requests(model_name, warmup.warmup_clips(
                     params.sample_rate_hz, params.clip_seconds),
                                        params.sample_rate_hz))
    say('Checking the reloaded export against the Keras model')
    export_check.verify_export(staging, model, contract, features_of,
                               bfloat16_features_of is not None)
    version = versions.next_version(model_dir)
    final = os.path.join(model_dir, str(version))
    if tf.io.gfile.exists(final):
      raise FileExistsError(f'{final} exists; versions are never overwritten')
    _copy_saved_model_last(staging, final)
  finally:
    if tf.io.gfile.exists(staging):
      # What is gone already needs no deleting (and TensorFlow's in-memory
      # file system lists names that are not there: see above).
      with contextlib.suppress(tf.errors.NotFoundError):
        tf.io.gfile.rmtree(staging)
  logging.info('Exported %s', final)
  return final


def _copy_saved_model_last(staging: str, final: str) -> None:
  """Copies a checked export into its version, the one way that holds on a
  local disk and on an object store alike (which has no rename of a
  directory: GCS copies object by object): saved_model.pb last, so that
  when it exists every variable and warmup file already does (TF Serving
  loads a version by its saved_model.pb), and whole: copied under a hidden
  name, then renamed, which is atomic on a disk and, on an object store, a
  copy whose object appears whole."""
  files = [posixpath.join(root[len(staging):].lstrip('/'), name)
           for root, _, names in tf.io.gfile.walk(staging) for name in names]
  # TensorFlow's in-memory file system lists by name prefix (assets/ shows
  # assets.extra's '.extra'): only what exists is copied.
  files = sorted((name for name in files
                  if tf.io.gfile.exists(posixpath.join(staging, name))),
                 key=lambda name: name == versions.SAVED_MODEL)
  try:
    for name in files:
      target = posixpath.join(final, name)
      tf.io.gfile.makedirs(posixpath.dirname(target))
      if name != versions.SAVED_MODEL:
        tf.io.gfile.copy(posixpath.join(staging, name), target)
        continue
      hidden = posixpath.join(final, f'.{name}.{uuid.uuid4().hex[:8]}.tmp')
      tf.io.gfile.copy(posixpath.join(staging, name), hidden)
      tf.io.gfile.rename(hidden, target)
  except BaseException:
    # Without its saved_model.pb no server loads it; gone, nobody tries.
    with contextlib.suppress(tf.errors.OpError):
      tf.io.gfile.rmtree(final)
    raise


def export_job(job_dir: str, export_base: str,
               model_name: str = naming.DEFAULT_MODEL_NAME,
               checkpoint: str | None = None,
               say: Callable[[str], None] = lambda _: None) -> str:
  """Exports a trainer job's best model (or `checkpoint`); returns the
  version directory. `say` is told what is being done, a line at a time."""
  check_model_name(model_name)
  config = job_layout.read_job_config(job_dir)
  manifest = manifest_lib.read(
      dataset_versions.resolve_data_dir(config['data_dir']))
  checkpoint = checkpoint or job_layout.best_model_path(job_dir)
  if not tf.io.gfile.exists(checkpoint) or tf.io.gfile.isdir(checkpoint):
    raise ExportError(f'{checkpoint} is not a .keras file')
  try:
    model = models.load(checkpoint)
  except (ValueError, OSError, TypeError, KeyError) as e:
    raise ExportError(f'{checkpoint} is not a model Keras can load '
                      f'({type(e).__name__})') from None
  refuse_non_finite(model, checkpoint)
  return export_model(model, manifest, export_base, model_name, say)
