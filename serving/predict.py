r"""Predicts the instrument family of WAV files with an exported model.

Usage:
  python -m serving.predict --model=exports/nsynth_instrument FILE.wav [DIR ...]
      [--json] [--top_k=3] [--batch_size=32]

--model is a version directory (holding saved_model.pb) or a model directory
of integer versions, of which the newest is used. Directories are searched
for *.wav. Files go through the export's WAV-bytes signature, exactly what a
TF Serving client sends; a file the model refuses (not a WAV, another sample
rate) is reported with the server's message and the others still predicted.
"""

from __future__ import annotations

import os
import sys
from typing import Iterable, Sequence

from absl import app
from absl import flags

from serving import results

def resolve_export(path: str) -> str:
  """A version directory: `path` itself, or its newest integer version."""
  from serving import export  # pylint: disable=g-import-not-at-top
  if os.path.exists(os.path.join(path, 'saved_model.pb')):
    return path
  versions = export.existing_versions(path)
  if not versions:
    raise FileNotFoundError(f'{path} holds neither saved_model.pb nor integer '
                            f'version directories')
  return os.path.join(path, str(versions[-1]))


def wav_files(paths: Iterable[str]) -> list[str]:
  found = []
  for path in paths:
    if os.path.isdir(path):
      for root, _, names in sorted(os.walk(path)):
        found += [os.path.join(root, n) for n in sorted(names)
                  if n.lower().endswith('.wav')]
    elif os.path.exists(path):
      found.append(path)
    else:
      raise FileNotFoundError(f'{path} does not exist')
  return found


class Predictor:
  """The export's WAV signature, batch by batch, isolating refused files."""

  def __init__(self, export_dir: str, top_k: int = 3):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from serving import signatures  # pylint: disable=g-import-not-at-top
    self._tf = tf
    self._signatures = signatures
    self._serve = tf.saved_model.load(export_dir).signatures[
        signatures.WAV_SIGNATURE]
    self._top_k = top_k

  def _run(self, files: Sequence[str]) -> list[results.Prediction]:
    contents = []
    for f in files:
      with open(f, 'rb') as handle:
        contents.append(handle.read())
    outputs = self._serve(wav=self._tf.constant(contents))
    return results.predictions_from_outputs(
        files, outputs[self._signatures.PROBABILITIES].numpy(),
        outputs[self._signatures.CLASSES].numpy(), self._top_k)

  def predict(self, files: Sequence[str]) -> list[results.Prediction]:
    try:
      return self._run(files)
    except self._tf.errors.InvalidArgumentError as e:
      if len(files) == 1:
        return [results.Prediction(files[0],
                                   error=results.readable_error(e.message))]
      # One bad file fails the batch: find it, keep the rest.
      return [p for f in files for p in self.predict([f])]


def main(argv):
  files = wav_files(argv[1:])
  if not files:
    raise app.UsageError('Name at least one WAV file or directory.')
  options = flags.FLAGS
  predictor = Predictor(resolve_export(options.model), options.top_k)
  batches = [files[i:i + options.batch_size]
             for i in range(0, len(files), options.batch_size)]
  if len(batches) > 1:
    import tqdm  # pylint: disable=g-import-not-at-top
    batches = tqdm.tqdm(batches, desc='Predicting', unit='batch',
                        file=sys.stderr)
  predictions = [p for batch in batches for p in predictor.predict(batch)]
  print(results.to_json(predictions) if options.json
        else results.to_table(predictions))
  if all(p.error for p in predictions):
    sys.exit(1)


def _define_flags():
  """Flags of the command only: importing this module defines none."""
  flags.DEFINE_string('model', None, 'Export directory: a version, or a '
                      'model directory of versions (the newest is used).',
                      required=True)
  flags.DEFINE_boolean('json', False, 'Print JSON instead of a table.')
  flags.DEFINE_integer('top_k', 3, 'Families to show per file.',
                       lower_bound=1)
  flags.DEFINE_integer('batch_size', 32, 'Files per call.', lower_bound=1)


def run():
  _define_flags()
  app.run(main)


if __name__ == '__main__':
  run()
