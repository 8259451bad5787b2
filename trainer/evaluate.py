r"""Writes the evaluation report of a trained job (trainer.report).

Usage:
  nsynth-evaluate --job_dir=jobs/demo --split=test [--split=valid]
      [--phrases=data/nsynth-demo/phrases-test]

Writes into `<job_dir>/eval/`: `<split>_metrics.json` (accuracy, loss,
macro-F1 and per-family precision/recall/F1 as scikit-learn computes them,
the confusion matrix, accuracy sliced by source and by pitch range, and the
split method, stated honestly), `<split>_confusion.png`, `<split>_slices.png`,
`<split>_examples.png` (the MFCCs of one note per family with what the model
made of it), and `curves.png` from the training history. The confusion
matrices, headline figures and hyperparameters also go to TensorBoard
(`<job_dir>/logs/report`).
"""

import sys

from absl import flags

from nsynth_common import cli


def _define_flags() -> None:
  flags.DEFINE_string('job_dir', None, 'A trainer --job_dir.', required=True)
  flags.DEFINE_multi_string('split', ['test'], 'Splits to evaluate.')
  flags.DEFINE_string('data_dir', None,
                      'TFRecords to evaluate on (default: the job\'s own).')
  flags.DEFINE_list('phrases', [], 'Directories of labelled recordings '
                    '(labels.json + audio/, e.g. phrases-test): also report '
                    'phrase-level accuracy, macro-F1 and confusion, beside '
                    'the note-level accuracy of the same instruments in the '
                    'first --split.')


def _phrase_line(directory: str, report: dict) -> str:
  notes = report['note_accuracy_same_instruments']
  return (f'phrases of {directory}: accuracy {report["accuracy"]:.3f}  '
          f'macro-F1 {report["macro_f1"]:.3f}  ({report["num_examples"]} '
          f'phrases, {report["windows"]} windows); the same instruments\' '
          f'{report["notes_of_the_same_instruments"]} notes in '
          f'{report["note_split"]}: accuracy '
          + (f'{notes:.3f}' if notes is not None else 'n/a'))


def _say(line: str) -> None:
  """What the command is doing: on stderr, as every command's progress."""
  print(line, file=sys.stderr, flush=True)


def _main(argv: list[str]) -> None:
  cli.no_arguments(argv)
  # Imported here, not at the top: TensorFlow reads its log level when it
  # is imported, and cli.run sets it before calling this.
  from nsynth_contracts import clip_features
  from nsynth_contracts import labelled_recordings
  from nsynth_contracts import manifest
  from trainer import input_pipeline
  from trainer import job_layout
  from trainer import report
  values = flags.FLAGS
  with cli.one_line_errors(job_layout.JobDirError, manifest.ManifestError,
                           input_pipeline.DataError, report.ReportError,
                           labelled_recordings.RecordingsError,
                           clip_features.RepresentationWeightsError):
    unfinished = job_layout.training_state(values.job_dir)
    if unfinished:
      _say(unfinished)
    reports = report.evaluate_job(values.job_dir, values.split,
                                  values.data_dir, say=_say)
    print(report.headline(reports, values.job_dir))
    for directory in values.phrases:
      print(_phrase_line(directory, report.evaluate_phrases(
          values.job_dir, directory, values.split[0], values.data_dir,
          say=_say)))


def main() -> None:
  """Console entry point (nsynth-evaluate)."""
  cli.run(_define_flags, _main, tensorflow=True)


if __name__ == '__main__':
  main()
