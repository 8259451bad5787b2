"""The installed stack holds together as setup.py and the Makefile promise."""

import importlib.metadata
import subprocess
import sys


def test_pip_check_finds_every_requirement_met():
  """The Makefile's install: every installed distribution's requirements are
  met (the three wheels used only in part are vendored without metadata)."""
  result = subprocess.run([sys.executable, '-m', 'pip', 'check'],
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stdout


def test_tf_serving_api_is_tensorflows_minor():
  """tensorflow-serving-api's protos are built for one TensorFlow minor."""
  def minor(name):
    return importlib.metadata.version(name).split('.')[:2]
  assert minor('tensorflow-serving-api') == minor('tensorflow')


def test_beam_has_its_gcs_file_system():
  """gs:// paths for --input, --output_dir and the workers' staging."""
  from apache_beam.io.filesystems import FileSystems
  from apache_beam.io.gcp import gcsfilesystem
  assert isinstance(FileSystems.get_filesystem('gs://bucket/x'),
                    gcsfilesystem.GCSFileSystem)
