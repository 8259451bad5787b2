"""The Beam job's accounting, as the table people read at its end."""

import posixpath

from beam_pipelines import job as job_lib
from beam_pipelines import output
from nsynth_contracts import manifest as manifest_lib


def summary_table(job: job_lib.JobResult, output_dir: str) -> str:
  """What happened to every note, for people."""
  accounting = job.manifest.accounting
  rows = [('read', 'examples.json', job.inputs.notes)]
  rows += [('written', k, v) for k, v in accounting.written.items()]
  rows += [('filtered', f'by {k}', v) for k, v in accounting.filtered.items()]
  rows += [('dead-lettered', k, v)
           for k, v in accounting.dead_lettered.items()]
  lines = [f'NSynth -> TFRecords: {output_dir}',
           f'  {"outcome":<14} {"detail":<22} {"notes":>8}',
           f'  {"-" * 14} {"-" * 22} {"-" * 8}']
  lines += [f'  {a:<14} {b:<22} {c:>8}' for a, b, c in rows]
  lines.append(f'  every note accounted for: {accounting.read} of '
               f'{job.inputs.notes}')
  for split, copies in accounting.augmented.items():
    lines.append(f'  plus {copies} augmented copies of {split} notes and '
                 f'windows ({job.manifest.augmentation.copies} each)')
  recorded = accounting.recordings
  if recorded:
    lines.append(
        f'  recordings: {recorded.read} listed; windowed '
        f'{sum(recorded.windowed.values())}, filtered '
        f'{sum(recorded.filtered.values())}, dead-lettered '
        f'{sum(recorded.dead_lettered.values())}; windows written ' +
        ', '.join(f'{s} {n}' for s, n in recorded.windows_written.items())
        + f'; {recorded.silent_windows_skipped} silent windows skipped')
  lines += _split_lines(job.manifest)
  if accounting.dead_lettered:
    lines.append(f'  dead letters: '
                 f'{posixpath.join(output_dir, output.DEAD_LETTERS_DIR)}/')
  return '\n'.join(lines)


def _split_lines(manifest: manifest_lib.Manifest) -> list[str]:
  lines = []
  for split, summary in manifest.splits.items():
    lines.append(f'  {split}: {summary.num_examples} examples from '
                 f'{summary.num_instruments} instruments; ' + ', '.join(
                     f'{f} {summary.families[f]}'
                     for f in manifest.vocabulary.families))
    if summary.libraries:
      lines.append('    libraries: ' + ', '.join(
          f'{name} {count}' for name, count in summary.libraries.items()))
  if manifest.representations:
    lines.append(
        '  representations: ' + ', '.join(
            r.representation.describe() for r in manifest.representations) +
        '; computed in ' + ', '.join(
            f'{name} ({records} records)' for name, records in
            manifest.representation_precision.items()))
  method = manifest.split_method
  lines.append(f'  split method: {method.name}' + (
      f' (held out: {method.holdout_library})'
      if method.holdout_library else '') +
               f'; instrument-disjoint: {method.instrument_disjoint}')
  return lines
