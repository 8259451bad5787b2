r"""Names the instrument family of recordings with an exported model.

Usage:
  nsynth-predict --model=exports/nsynth_instrument FILE [DIR ...]
      [--json] [--top_k=3] [--batch_size=32] [--timeline] [--plot=DIR]

--model is a version directory (holding saved_model.pb) or a model directory
of integer versions, of which the newest that loads is used (each newer one
skipped is named: no saved_model.pb yet, or a damaged one). Files may be
WAV, FLAC, OGG or MP3, at any sample rate, mono or stereo: nsynth_contracts.
audio_decoding decodes them as the Beam job does, mixes the channels and
resamples them to the rate of the export's own contract. Directories are
searched for those suffixes.

A file no longer than a note (the export's clip, 4 s) goes through
`serving_default`, in batches; a longer one through `serving_long_audio`,
which cuts it into the export's windows (4 s every 2 s) and answers each
and the whole (serving.predictor). A note or recording with no sound is
answered `(no sound)`. The table shows the recording's family; --timeline
adds a row per window, and --plot writes a PNG per recording: family
probabilities over time above its spectrogram (named after the file, with a
short hash of its path where two names collide). A file that cannot be read
or decoded gets its own error row; the others are still predicted, and the
exit status is 1 if any file failed.
"""

import os
import sys

import tqdm
from absl import flags

from nsynth_common import cli
from nsynth_contracts import precision


def _define_flags() -> None:
  flags.DEFINE_string('model', None, 'Export directory: a version, or a '
                      'model directory of versions (the newest that loads is '
                      'used).', required=True)
  flags.DEFINE_boolean('json', False, 'Print JSON instead of a table.')
  flags.DEFINE_integer('top_k', 3, 'Families to show per file.',
                       lower_bound=1)
  flags.DEFINE_integer('batch_size', 32, 'Files per step.', lower_bound=1)
  flags.DEFINE_enum('precision', precision.AUTO, list(precision.CHOICES),
                    'What the export\'s networks compute in here: bfloat16 '
                    '(its signatures\' _bfloat16 twins, where the CPU has '
                    'AVX-512 BF16 or AMX), float32, or auto: bfloat16 where '
                    'this CPU has it and the export has the twins.')
  flags.DEFINE_boolean('timeline', False, 'For recordings longer than a '
                       'note, also show each window: when it starts and its '
                       'family.')
  flags.DEFINE_string('plot', None, 'Write a PNG per recording longer than '
                      'a note into this directory: family probabilities '
                      'over time above the spectrogram.')


def _main(argv: list[str]) -> None:
  # Imported here, not at the top: TensorFlow reads its log level when it
  # is imported, and cli.run sets it before calling this.
  from nsynth_contracts import serving_contract
  from serving import audio_files
  from serving import predictor as predictor_lib
  from serving import results
  from serving import timeline_plot
  options = flags.FLAGS
  files = audio_files.audio_files(argv[1:])
  if not files:
    raise cli.UserError('name at least one recording or directory')
  if options.plot and os.path.exists(options.plot) and not os.path.isdir(
      options.plot):
    raise cli.UserError(f'--plot {options.plot} is a file, not a directory')
  try:
    resolved = precision.resolve(options.precision)
  except precision.PrecisionError as e:
    raise cli.UserError(f'--precision={options.precision}: {e}') from None
  try:
    predictor, skipped = predictor_lib.load_newest(options.model,
                                                   options.top_k, resolved)
  except (predictor_lib.ModelNotFoundError,
          serving_contract.ContractError) as e:
    raise cli.UserError(f'--model {e}') from None
  for line in skipped:
    print(f'Skipped {line}', file=sys.stderr)
  # auto takes float32 where the export has no bfloat16 twins; only an
  # explicit bfloat16 that cannot be had is refused.
  if options.precision == precision.BFLOAT16 and (
      predictor.precision != precision.BFLOAT16):
    raise cli.UserError(f'--precision={options.precision}: {options.model} '
                        f'has no bfloat16 signatures (its model reads MFCCs '
                        f'only); use float32')
  draw = None
  if options.plot:
    names = timeline_plot.png_names(files)

    def draw(file, waveform, outputs):
      png = timeline_plot.plot_recording(
          file, waveform, outputs, os.path.join(options.plot, names[file]),
          predictor.contract.feature_params)
      print(f'Timeline of {file}: {png}', file=sys.stderr)
  # A batch at a time: memory holds one batch of notes (and one recording),
  # whatever the number of files; what is kept of each is its answer.
  batches = range(0, len(files), options.batch_size)
  if len(batches) > 1:
    batches = tqdm.tqdm(batches, desc='Predicting', unit='batch',
                        file=sys.stderr)
  predictions = [p for start in batches for p in predictor.predict(
      files[start:start + options.batch_size], on_recording=draw)]
  print(results.to_json(predictions, options.timeline) if options.json
        else results.to_table(predictions, options.timeline))
  failed = sum(1 for p in predictions if p.error)
  if failed:
    print(f'{failed} of {len(predictions)} files could not be predicted',
          file=sys.stderr)
    sys.exit(1)


def main() -> None:
  """Console entry point (nsynth-predict)."""
  cli.run(_define_flags, _main, tensorflow=True)


if __name__ == '__main__':
  main()
