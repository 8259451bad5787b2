r"""Renders the demo data: NSynth-layout notes and solo phrases.

Usage:
  nsynth-render-demo --output_dir=data/demo [--pitch_step=4]
      [--velocities=50,100] [--libraries=timgm6mb,merlin,...]
      [--phrases_per_instrument=1] [--synthesis=stk,faust]
      [--synthesis_instruments_per_model=5] [--synthesis_pitch_step=6]
      [--synthesis_velocities=50,100] [--synthesis_seed=0]

Writes `<output_dir>/nsynth-{train,valid,test}/` (demo_data.notes: NSynth's
exact layout and schema, one instrument per sample library and General MIDI
program, instrument-disjoint valid and test) and `phrases-<split>/`
(demo_data.phrases), and for each --synthesis family
`<output_dir>/<family>/nsynth-{train,valid,test}/` (demo_data.synthesis:
instruments drawn from physical, FM and additive models, every note
checked) with its checks.json. Rendering is deterministic.
"""

import os

from absl import flags

from demo_data import libraries
from demo_data import notes
from demo_data import phrases
from demo_data import synthesis
from nsynth_common import cli


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
  for family in flags.FLAGS.synthesis:
    if family != 'none':
      _render_synthesis(family)


def _render_synthesis(family: str) -> None:
  values = flags.FLAGS
  sizes = synthesis.SynthesisSizes(
      instruments_per_model=values.synthesis_instruments_per_model,
      pitch_step=values.synthesis_pitch_step,
      velocities=tuple(int(v) for v in values.synthesis_velocities),
      seed=values.synthesis_seed)
  checks = synthesis.render_family(values.output_dir, family, sizes,
                                   progress=True)
  kept = sum(c.kept_notes for c in checks.values())
  drawn = sum(c.draws for c in checks.values())
  rejected = sum(c.rejected_draws for c in checks.values())
  print(f'{family:>6}: {kept:5d} notes of '
        f'{sum(c.instruments for c in checks.values())} instruments in '
        f'{os.path.join(values.output_dir, family)} ({rejected} of {drawn} '
        f'draws rejected by the checks; checks.json has the counts)')


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
  _define_synthesis_flags(velocities)


def _define_synthesis_flags(velocities: tuple[int, ...]) -> None:
  defaults = synthesis.SynthesisSizes()
  flags.DEFINE_list('synthesis', list(synthesis.FAMILIES),
                    'Synthesis families to render, each into '
                    '<output_dir>/<family>/nsynth-<split>/, of '
                    f'{",".join(synthesis.FAMILIES)}; "none" for none.')
  flags.register_validator(
      'synthesis', lambda v: v == ['none'] or set(v) <= set(
          synthesis.FAMILIES),
      message=f'--synthesis must be "none" or some of '
      f'{",".join(synthesis.FAMILIES)}')
  flags.DEFINE_integer('synthesis_instruments_per_model',
                       defaults.instruments_per_model, 'Instruments (draws '
                       'of controls) per synthesis model; with 3 or more, '
                       'one goes to valid and one to test.', lower_bound=1)
  flags.DEFINE_integer('synthesis_pitch_step', defaults.pitch_step,
                       'Every Nth pitch of a synthesis model\'s range.',
                       lower_bound=1)
  flags.DEFINE_list('synthesis_velocities',
                    [str(v) for v in defaults.velocities],
                    f'Velocities of the synthesis notes, some of {velocities}.')
  flags.register_validator(
      'synthesis_velocities',
      lambda v: bool(v) and all(s.isdigit() and int(s) in velocities
                                for s in v),
      message=f'--synthesis_velocities must be a non-empty list of '
      f'{velocities}')
  flags.DEFINE_integer('synthesis_seed', defaults.seed, 'Seeds the draws of '
                       'the synthesis instruments.')


def main() -> None:
  """Console entry point (nsynth-render-demo)."""
  cli.run(_define_flags, _main, user_errors=(
      libraries.LibraryMissingError, synthesis.SynthesisMissingError))


if __name__ == '__main__':
  main()
