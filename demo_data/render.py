r"""Renders the demo data: NSynth-layout notes and solo phrases.

Usage:
  nsynth-render-demo --output_dir=data/demo [--pitch_step=4]
      [--velocities=50,100] [--libraries=timgm6mb,merlin,...]
      [--phrases_per_instrument=1]

Writes `<output_dir>/nsynth-{train,valid,test}/` (demo_data.notes: NSynth's
exact layout and schema, one instrument per sample library and General MIDI
program, instrument-disjoint valid and test) and `phrases-<split>/`
(demo_data.phrases). Rendering is deterministic.
"""

import os

from absl import flags

from demo_data import libraries
from demo_data import notes
from demo_data import phrases
from nsynth_contracts import cli


def _main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise cli.UserError(f'unexpected arguments {argv[1:]}')
  counts = notes.render_dataset(flags.FLAGS.output_dir, flags.FLAGS.pitch_step,
                          [int(v) for v in flags.FLAGS.velocities],
                          flags.FLAGS.libraries, progress=True)
  for split, count in counts.items():
    print(f'{split:>6}: {count:5d} notes in '
          f'{os.path.join(flags.FLAGS.output_dir, "nsynth-" + split)}')
  if flags.FLAGS.phrases_per_instrument:
    counts = phrases.render_phrases(
        flags.FLAGS.output_dir, flags.FLAGS.phrases_per_instrument,
        flags.FLAGS.libraries, progress=True)
    for split, count in counts.items():
      print(f'{split:>6}: {count:5d} phrases in '
            f'{os.path.join(flags.FLAGS.output_dir, "phrases-" + split)}')


def _define_flags():
  flags.DEFINE_string('output_dir', None,
                      'Where nsynth-{train,valid,test}/ are written.',
                      required=True)
  flags.DEFINE_integer('pitch_step', 4,
                       'Render every Nth MIDI pitch of each family\'s range.',
                       lower_bound=1)
  velocities = notes.NSYNTH_VELOCITIES
  flags.DEFINE_list('velocities', ['50', '100'],
                    f'MIDI velocities to render, some of {velocities}.')
  flags.register_validator(
      'velocities',
      lambda v: bool(v) and all(s.isdigit() and int(s) in velocities
                                for s in v),
      message=f'--velocities must be a non-empty list of {velocities}')
  flags.DEFINE_list('libraries', [], 'Sample libraries to render, of '
                    f'{",".join(libraries.BY_NAME)} (default: every one '
                    'installed).')
  flags.DEFINE_integer('phrases_per_instrument', 1, 'Solo phrases (10-30 s) '
                       'to render per kept instrument, into '
                       'phrases-<split>/ (0: none).', lower_bound=0)


def main() -> None:
  """Console entry point (nsynth-render-demo)."""
  cli.run(_define_flags, _main, user_errors=(libraries.LibraryMissingError,))


if __name__ == '__main__':
  main()
