r"""Names the instrument family of recordings with an exported model.

Usage:
  nsynth-predict --model=exports/nsynth_instrument FILE [DIR ...]
      [--json] [--top_k=3] [--batch_size=32] [--timeline] [--plot=DIR]

--model is a version directory (holding saved_model.pb) or a model directory
of integer versions, of which the newest is used. Files may be WAV, FLAC,
OGG or MP3, at any sample rate, mono or stereo: nsynth_contracts.
audio_decoding decodes them as the Beam job does, averages the channels and
resamples to 16 kHz. Directories are searched for those suffixes.

A file no longer than a note (4 s) goes through `serving_default`, in
batches; a longer one through `serving_long_audio`, which cuts it into
4-second windows every 2 s, answers each and the whole. A note or recording
with no sound is answered `(no sound)`. The table shows the recording's
family; --timeline adds a row per window, and --plot writes a PNG per
recording: family probabilities over time above its spectrogram (named
after the file, with a short hash of its path where two names collide).
A file that cannot be read or decoded gets its own error row; the others
are still predicted, and the exit status is 1 if any file failed.
"""

# First: as a command, this quiets TensorFlow before anything imports it.
from nsynth_contracts import cli

# isort: split

import os
import sys
from collections.abc import Iterable
from collections.abc import Sequence

from absl import flags

from nsynth_contracts import audio_decoding
from nsynth_contracts import audio_limits
from nsynth_contracts import feature_params
from nsynth_contracts import window_params
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


def audio_files(paths: Iterable[str]) -> list[str]:
  """The files to predict: each named file, and the recordings under each
  named directory (broken links included: they get their own error)."""
  found = []
  for path in paths:
    if os.path.isdir(path):
      inside = [os.path.join(root, n)
                for root, _, names in sorted(os.walk(path))
                for n in sorted(names)
                if n.lower().endswith(audio_decoding.RECORDING_SUFFIXES)]
      # A directory with nothing to predict gets its own row, not silence.
      found += inside or [path]
    else:
      found.append(path)  # Missing or unreadable: reported in its own row.
  return found


_NAMED_DIRECTORIES = set()  # directories named on the command line


def read_file(path: str, max_seconds: float,
              params: feature_params.FeatureParams = (
                  feature_params.DEFAULT_PARAMS)):
  """The recording, float32 [samples] at the params' rate, or the reason it
  cannot be read, in the decoder's words (never a traceback)."""
  if path in _NAMED_DIRECTORIES:
    return f'a directory with no {audio_limits.FORMATS} file'
  try:
    return audio_decoding.read_file(path, params.sample_rate_hz,
                                    max_seconds=max_seconds).samples
  except audio_limits.AudioError as e:
    return str(e)


class Predictor:
  """The export's signatures on decoded recordings, isolating failures."""

  def __init__(self, export_dir: str, top_k: int = 3,
               params: feature_params.FeatureParams = (
                   feature_params.DEFAULT_PARAMS)):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    from serving import signatures  # pylint: disable=g-import-not-at-top
    self._tf = tf
    self._signatures = signatures
    loaded = tf.saved_model.load(export_dir)
    self._serve_notes = loaded.signatures[signatures.AUDIO_SIGNATURE]
    self._serve_recording = loaded.signatures[
        signatures.LONG_AUDIO_SIGNATURE]
    self._params = params
    self.max_seconds = window_params.DEFAULT_WINDOWS.max_seconds
    self._top_k = top_k
    self.recordings = {}   # file -> (waveform, outputs), for --plot

  def _notes(self, files, clips) -> list[results.Prediction]:
    try:
      outputs = self._serve_notes(audio=self._tf.constant(clips))
    except self._tf.errors.InvalidArgumentError as e:
      if len(files) == 1:
        return [results.Prediction(files[0],
                                   error=results.readable_error(e.message))]
      # One bad file fails the batch: find it, keep the rest.
      return [p for f, c in zip(files, clips)
              for p in self._notes([f], c[None])]
    return results.predictions_from_outputs(
        files, outputs[self._signatures.PROBABILITIES].numpy(),
        outputs[self._signatures.CLASSES].numpy(), self._top_k)

  def _recording(self, file, waveform) -> results.Prediction:
    try:
      outputs = self._serve_recording(audio=self._tf.constant(waveform))
    except self._tf.errors.InvalidArgumentError as e:
      return results.Prediction(file, error=results.readable_error(e.message))
    outputs = {k: v.numpy() for k, v in outputs.items()}
    self.recordings[file] = (waveform, outputs)
    return results.recording_prediction(
        file, len(waveform) / self._params.sample_rate_hz, outputs,
        self._top_k)

  def predict(self, files: Sequence[str]) -> list[results.Prediction]:
    """One Prediction per file, in order; unreadable files get an error."""
    import numpy as np  # pylint: disable=g-import-not-at-top
    read = {f: read_file(f, self.max_seconds, self._params) for f in files}
    predicted = {}
    notes = [f for f in files if not isinstance(read[f], str)
             and len(read[f]) <= self._params.clip_samples]
    if notes:
      clips = np.stack([feature_params.pad_or_trim_numpy(read[f],
                                                         self._params)
                        for f in notes])
      predicted.update((p.file, p) for p in self._notes(notes, clips))
    for f in files:
      if not isinstance(read[f], str) and f not in predicted:
        predicted[f] = self._recording(f, read[f])
    return [predicted.get(f) or results.Prediction(f, error=read[f])
            for f in files]


def _main(argv: list[str]) -> None:
  files = audio_files(argv[1:])
  if not files:
    raise cli.UserError('name at least one recording or directory')
  _NAMED_DIRECTORIES.update(p for p in argv[1:] if os.path.isdir(p))
  options = flags.FLAGS
  if options.plot and os.path.exists(options.plot) and not os.path.isdir(
      options.plot):
    raise cli.UserError(f'--plot {options.plot} is a file, not a directory')
  predictor = Predictor(resolve_export(options.model), options.top_k)
  batches = [files[i:i + options.batch_size]
             for i in range(0, len(files), options.batch_size)]
  if len(batches) > 1:
    import tqdm  # pylint: disable=g-import-not-at-top
    batches = tqdm.tqdm(batches, desc='Predicting', unit='batch',
                        file=sys.stderr)
  predictions = [p for batch in batches for p in predictor.predict(batch)]
  print(results.to_json(predictions, options.timeline) if options.json
        else results.to_table(predictions, options.timeline))
  if options.plot:
    from serving import timeline_plot  # pylint: disable=g-import-not-at-top
    os.makedirs(options.plot, exist_ok=True)
    names = timeline_plot.png_names(list(predictor.recordings))
    for file, (waveform, outputs) in predictor.recordings.items():
      path = os.path.join(options.plot, names[file])
      timeline_plot.plot(waveform, outputs, os.path.basename(file), path)
      print(f'Timeline of {file}: {path}', file=sys.stderr)
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
  flags.DEFINE_integer('batch_size', 32, 'Files per step.', lower_bound=1)
  flags.DEFINE_boolean('timeline', False, 'For recordings longer than a '
                       'note, also show each window: when it starts and its '
                       'family.')
  flags.DEFINE_string('plot', None, 'Write a PNG per recording longer than '
                      'a note into this directory: family probabilities '
                      'over time above the spectrogram.')


def main() -> None:
  """Console entry point (nsynth-predict)."""
  cli.run(_define_flags, _main)


if __name__ == '__main__':
  main()
