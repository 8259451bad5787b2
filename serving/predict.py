r"""Predicts the instrument family of WAV files with an exported model.

Usage:
  nsynth-predict --model=exports/nsynth_instrument FILE.wav [DIR ...]
      [--json] [--top_k=3] [--batch_size=32]

--model is a version directory (holding saved_model.pb) or a model directory
of integer versions, of which the newest is used. Directories are searched
for *.wav. Files go through the export's WAV-bytes signature, exactly what a
TF Serving client sends; a file the model refuses (not a WAV, another sample
rate) is reported with the server's message and the others still predicted.
"""

# First: as a command, this quiets TensorFlow before anything imports it.
from nsynth_contracts import cli

# isort: split

import os
import sys
from collections.abc import Iterable
from collections.abc import Sequence

from absl import flags

from serving import results


class ModelNotFoundError(cli.UserError):
  """--model names no usable export; the message says what is there."""


def resolve_export(path: str) -> str:
  """A version directory: `path` itself, or its newest integer version.

  Raises:
    ModelNotFoundError: `path` is missing, or holds no export.
  """
  from serving import export  # pylint: disable=g-import-not-at-top
  if not os.path.exists(path):
    raise ModelNotFoundError(f'--model {path} does not exist')
  if os.path.exists(os.path.join(path, 'saved_model.pb')):
    return path
  if not os.path.isdir(path):
    raise ModelNotFoundError(f'--model {path} is a file, not an export '
                             f'directory')
  versions = export.existing_versions(path)
  if not versions:
    raise ModelNotFoundError(f'--model {path} holds neither saved_model.pb '
                             f'nor integer version directories')
  return os.path.join(path, str(versions[-1]))


def wav_files(paths: Iterable[str]) -> list[str]:
  """The files to predict: each named file, and the *.wav files under each
  named directory (broken links included: they get their own error)."""
  found = []
  for path in paths:
    if os.path.isdir(path):
      for root, _, names in sorted(os.walk(path)):
        found += [os.path.join(root, n) for n in sorted(names)
                  if n.lower().endswith('.wav')]
    else:
      found.append(path)  # Missing or unreadable: reported in its own row.
  return found


def read_file(path: str) -> bytes | str:
  """The file's bytes, or the reason it cannot be read (never a traceback)."""
  try:
    with open(path, 'rb') as f:
      return f.read()
  except FileNotFoundError:
    return ('a link to a file that does not exist' if os.path.islink(path)
            else 'file does not exist')
  except IsADirectoryError:
    return 'a directory, not a file'
  except OSError as e:
    return f'cannot read it: {e.strerror or type(e).__name__}'


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

  def _run(self, files: Sequence[str],
           contents: Sequence[bytes]) -> list[results.Prediction]:
    outputs = self._serve(wav=self._tf.constant(list(contents)))
    return results.predictions_from_outputs(
        files, outputs[self._signatures.PROBABILITIES].numpy(),
        outputs[self._signatures.CLASSES].numpy(), self._top_k)

  def _predict_readable(self, files, contents) -> list[results.Prediction]:
    try:
      return self._run(files, contents)
    except self._tf.errors.InvalidArgumentError as e:
      if len(files) == 1:
        return [results.Prediction(files[0],
                                   error=results.readable_error(e.message))]
      # One bad file fails the batch: find it, keep the rest.
      return [p for f, c in zip(files, contents)
              for p in self._predict_readable([f], [c])]

  def predict(self, files: Sequence[str]) -> list[results.Prediction]:
    """One Prediction per file, in order; unreadable files get an error."""
    read = {f: read_file(f) for f in files}
    readable = [f for f in files if isinstance(read[f], bytes)]
    predicted = {}
    if readable:
      for prediction in self._predict_readable(
          readable, [read[f] for f in readable]):
        predicted[prediction.file] = prediction
    return [predicted.get(f) or results.Prediction(f, error=read[f])
            for f in files]


def _main(argv: list[str]) -> None:
  files = wav_files(argv[1:])
  if not files:
    raise cli.UserError('name at least one WAV file or directory')
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
  failed = sum(1 for p in predictions if p.error)
  if failed:
    print(f'{failed} of {len(predictions)} files could not be predicted',
          file=sys.stderr)
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


def main() -> None:
  """Console entry point (nsynth-predict)."""
  cli.run(_define_flags, _main)


if __name__ == '__main__':
  main()
