r"""Exports a trained model as a SavedModel for TF Serving (serving.exporter).

Usage:
  nsynth-export --job_dir=jobs/demo --export_base=exports \
      [--model_name=nsynth_instrument] [--checkpoint=PATH.keras] \
      [--models_config=exports/models.config]

Writes `<export_base>/<model_name>/<version>/` (saved_model.pb, variables/,
assets.extra/tf_serving_warmup_requests) with the next integer version; an
existing version is never touched. The export is reloaded and checked before
it is moved into place.
"""

import os
import sys

from absl import flags

from nsynth_common import cli
from serving import naming


def _define_flags() -> None:
  flags.DEFINE_string('job_dir', None, 'A trainer --job_dir.', required=True)
  flags.DEFINE_string('export_base', None, 'Exports go to '
                      '<export_base>/<model_name>/<version>/.', required=True)
  flags.DEFINE_string('model_name', naming.DEFAULT_MODEL_NAME,
                      'TF Serving model name.')
  flags.DEFINE_string('checkpoint', None, 'A .keras checkpoint (default: the '
                      'job\'s best).')
  flags.DEFINE_string('models_config', None, 'Also write a TF Serving '
                      '--model_config_file here.')
  flags.register_validator('model_name', naming.is_model_name,
                           message=f'--model_name {naming.MESSAGE}')


def _main(argv: list[str]) -> None:
  cli.no_arguments(argv)
  # Imported here, not at the top: TensorFlow reads its log level when it
  # is imported, and cli.run sets it before calling this.
  import tensorflow as tf

  from nsynth_contracts import manifest
  from serving import export_check
  from serving import exporter
  from trainer import job_layout
  values = flags.FLAGS
  with cli.one_line_errors(job_layout.JobDirError, manifest.ManifestError,
                           exporter.ExportError,
                           export_check.ExportCheckError):
    if not values.checkpoint:
      unfinished = job_layout.training_state(values.job_dir)
      if unfinished:
        print(unfinished, file=sys.stderr, flush=True)
    path = exporter.export_job(
        values.job_dir, values.export_base, values.model_name,
        values.checkpoint,
        say=lambda line: print(line, file=sys.stderr, flush=True))
  print(f'Exported {path}')
  if values.models_config:
    base = os.path.abspath(os.path.join(values.export_base,
                                        values.model_name))
    with tf.io.gfile.GFile(values.models_config, 'w') as f:
      f.write(exporter.models_config(values.model_name, base))
    print(f'TF Serving model config: {values.models_config}')


def main() -> None:
  """Console entry point (nsynth-export)."""
  cli.run(_define_flags, _main, tensorflow=True)


if __name__ == '__main__':
  main()
