r"""Exports a trained model as a SavedModel for TF Serving.

Usage:
  python -m serving.export --job_dir=jobs/demo --export_base=exports \
      [--model_name=nsynth_instrument] [--checkpoint=PATH.keras] \
      [--models_config=exports/models.config]

Writes `<export_base>/<model_name>/<version>/` (saved_model.pb, variables/,
assets.extra/tf_serving_warmup_requests) with the next integer version; an
existing version is never touched. The export is reloaded and checked before
it is moved into place.
"""

from __future__ import annotations

import logging
import os
import re
import uuid

import keras
import numpy as np
import tensorflow as tf

from nsynth_contracts import audio
from nsynth_contracts import manifest as manifest_lib
from serving import signatures
from serving import warmup

DEFAULT_MODEL_NAME = 'nsynth_instrument'


def existing_versions(model_dir: str) -> list[int]:
  """Integer version directories, the only ones TF Serving loads."""
  if not tf.io.gfile.isdir(model_dir):
    return []
  return sorted(int(name.rstrip('/')) for name in tf.io.gfile.listdir(model_dir)
                if re.fullmatch(r'\d+/?', name))


def next_version(model_dir: str) -> int:
  versions = existing_versions(model_dir)
  return versions[-1] + 1 if versions else 1


def models_config(model_name: str, base_path: str) -> str:
  """A TF Serving --model_config_file for this model (text protobuf)."""
  return ('model_config_list {\n'
          '  config {\n'
          f'    name: "{model_name}"\n'
          f'    base_path: "{base_path}"\n'
          '    model_platform: "tensorflow"\n'
          '  }\n'
          '}\n')


def _write_saved_model(model: keras.Model, manifest: manifest_lib.Manifest,
                       path: str) -> None:
  serve_audio, serve_wav = signatures.make_serving_functions(model, manifest)
  archive = keras.export.ExportArchive()
  archive.track(model)
  archive.add_endpoint(signatures.AUDIO_SIGNATURE, serve_audio)
  archive.add_endpoint(signatures.WAV_SIGNATURE, serve_wav)
  archive.write_out(path, verbose=False)


def verify_export(path: str, model: keras.Model,
                  manifest: manifest_lib.Manifest,
                  tolerance: float = 1e-5) -> None:
  """Reloads the SavedModel and checks it against the Keras model.

  Raises:
    AssertionError: the reloaded signatures disagree with the model run on
      the same features.
  """
  from nsynth_contracts import features  # pylint: disable=g-import-not-at-top
  loaded = tf.saved_model.load(path)
  clips = warmup.warmup_clips(manifest.feature_params.sample_rate_hz)
  expected = model(features.waveform_to_mfcc(clips, manifest.feature_params),
                   training=False).numpy()
  by_audio = loaded.signatures[signatures.AUDIO_SIGNATURE](
      audio=tf.constant(clips))
  by_wav = loaded.signatures[signatures.WAV_SIGNATURE](wav=tf.constant(
      [audio.encode_pcm16(c, manifest.feature_params.sample_rate_hz)
       for c in clips]))
  np.testing.assert_allclose(by_audio[signatures.PROBABILITIES].numpy(),
                             expected, atol=tolerance)
  families = [f.decode() for f in by_audio[signatures.FAMILY].numpy()]
  assert families == [manifest.vocabulary.family(i)
                      for i in expected.argmax(axis=1)]
  # WAV bytes are 16-bit: close to, not equal to, the float clips.
  np.testing.assert_allclose(by_wav[signatures.PROBABILITIES].numpy(),
                             expected, atol=1e-2)


def export_model(model: keras.Model, manifest: manifest_lib.Manifest,
                 export_base: str, model_name: str = DEFAULT_MODEL_NAME
                 ) -> str:
  """Writes, checks and publishes the next version; returns its path."""
  model_dir = os.path.join(export_base, model_name)
  tf.io.gfile.makedirs(model_dir)
  staging = os.path.join(model_dir, f'.staging-{uuid.uuid4().hex[:12]}')
  try:
    _write_saved_model(model, manifest, staging)
    extra = os.path.join(staging, 'assets.extra')
    tf.io.gfile.makedirs(extra)
    rate = manifest.feature_params.sample_rate_hz
    warmup.write(os.path.join(extra, warmup.WARMUP_FILE),
                 warmup.warmup_requests(model_name, warmup.warmup_clips(rate),
                                        rate))
    verify_export(staging, model, manifest)
    version = next_version(model_dir)
    final = os.path.join(model_dir, str(version))
    if tf.io.gfile.exists(final):
      raise FileExistsError(f'{final} exists; versions are never overwritten')
    tf.io.gfile.rename(staging, final)
  finally:
    if tf.io.gfile.exists(staging):
      tf.io.gfile.rmtree(staging)
  logging.info('Exported %s', final)
  return final


def export_job(job_dir: str, export_base: str,
               model_name: str = DEFAULT_MODEL_NAME,
               checkpoint: str | None = None) -> str:
  from trainer import train  # pylint: disable=g-import-not-at-top
  config = train.read_job_config(job_dir)
  manifest = manifest_lib.read(config['data_dir'])
  model = keras.models.load_model(checkpoint or train.best_model_path(job_dir))
  return export_model(model, manifest, export_base, model_name)


def main(argv):
  del argv
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags_ = flags.FLAGS
  path = export_job(flags_.job_dir, flags_.export_base, flags_.model_name,
                    flags_.checkpoint)
  print(f'Exported {path}')
  if flags_.models_config:
    base = os.path.abspath(os.path.join(flags_.export_base, flags_.model_name))
    with open(flags_.models_config, 'w') as f:
      f.write(models_config(flags_.model_name, base))
    print(f'TF Serving model config: {flags_.models_config}')


def run():
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string('job_dir', None, 'A trainer.task --job_dir.',
                      required=True)
  flags.DEFINE_string('export_base', None, 'Exports go to '
                      '<export_base>/<model_name>/<version>/.', required=True)
  flags.DEFINE_string('model_name', DEFAULT_MODEL_NAME,
                      'TF Serving model name.')
  flags.DEFINE_string('checkpoint', None, 'A .keras checkpoint (default: the '
                      'job\'s best).')
  flags.DEFINE_string('models_config', None, 'Also write a TF Serving '
                      '--model_config_file here.')
  flags.register_validator(
      'model_name', lambda v: bool(re.fullmatch(r'[A-Za-z0-9_.-]+', v)),
      message='--model_name must be a plain name (letters, digits, _ . -)')
  app.run(main)


if __name__ == '__main__':
  run()
