"""The `faust` synthesis family: Faust programs as instruments.

The `dawdreamer` wheel carries the Faust compiler and its libraries,
physmodels.lib among them (waveguide strings, lips, reeds, jets, bars).
Beside those waveguides this family has additive and FM models written in
demo_data.faust_dsp, for the families whose models were weakest: brass
(FM, additive), organ (tonewheel, pipe, reed organ) and bass (a
plucked string below physmodels' 3 m limit). An instrument is a uniform draw
of a model's sliders within the ranges below.

Each program is compiled once per process and model, then played note by
note. Faust runs at 48 kHz and the notes are resampled to 16 kHz: its
waveguides' loop filters add delay that their tuning ignores, so at 16 kHz
they play flat (MIDI 40 at 78 Hz, not 82; MIDI 60 at 219 Hz, not 262).
"""

import dataclasses
import functools
import sys

import numpy as np
import soxr

from demo_data import faust_dsp
from demo_data import notes

RENDER_RATE_HZ = 48000
_BLOCK_SAMPLES = 512


class ToolkitConflictError(RuntimeError):
  """Faust's toolkit asked for in a process it would crash."""


@dataclasses.dataclass(frozen=True)
class FaustControls:
  """One Faust instrument: a value for each of its model's sliders."""
  slider_values: tuple[tuple[str, float], ...]


@dataclasses.dataclass(frozen=True)
class FaustModel:
  """A Faust program playing one NSynth family
  (demo_data.synthesis.SynthModel)."""
  name: str
  family: str
  source: str
  pitch_range: tuple[int, int]
  dsp: str                                        # a faust_dsp body
  sliders: tuple[tuple[str, float, float], ...]   # (name, low, high)
  # -1 where the lowest stop sounds an octave below the key (an organ's
  # 16'): the checks hear the note there.
  sounding_octave: int = 0

  def draw(self, rng: np.random.Generator) -> FaustControls:
    return FaustControls(tuple((name, float(rng.uniform(low, high)))
                               for name, low, high in self.sliders))

  def program(self) -> str:
    """The whole Faust program: prelude, one slider per control, body."""
    lines = [faust_dsp.PRELUDE.format(hold_seconds=notes.HOLD_SECONDS)]
    for name, low, high in self.sliders:
      lines.append(f'{name} = hslider("{name}", {low}, {min(low, 0.0)}, '
                   f'{max(high, 1.0) * 2}, 0.000001);')
    return '\n'.join(lines) + self.dsp

  def render(self, controls: FaustControls, pitch: int,
             velocity: int) -> np.ndarray:
    engine, processor = _compiled(self.name, self.program())
    processor.set_parameter('/dawdreamer/freq',
                            440.0 * 2.0 ** ((pitch - 69) / 12.0))
    processor.set_parameter('/dawdreamer/gain', 0.4 + 0.6 * velocity / 127)
    for name, value in controls.slider_values:
      processor.set_parameter(f'/dawdreamer/{name}', value)
    engine.render(notes.HOLD_SECONDS + notes.RELEASE_SECONDS)
    out = np.asarray(engine.get_audio()[0], np.float64)
    out = out[:int((notes.HOLD_SECONDS + notes.RELEASE_SECONDS)
                   * RENDER_RATE_HZ)]
    return soxr.resample(out, RENDER_RATE_HZ, notes.SAMPLE_RATE_HZ)


@functools.cache
def _compiled(name: str, program: str):
  """(engine, processor) for one program, compiled once per process.

  Raises:
    ToolkitConflictError: this process has imported TensorFlow.
  """
  if 'tensorflow' in sys.modules:
    # Loading dawdreamer's LLVM beside TensorFlow's kills the process with
    # SIGSEGV, taking a test session or a benchmark down without a word.
    raise ToolkitConflictError(
        f'model {name}: Faust (dawdreamer) cannot load into a process that '
        'has imported TensorFlow; render through '
        'demo_data.synthesis.draw_isolated, which draws in clean processes')
  import dawdreamer
  engine = dawdreamer.RenderEngine(RENDER_RATE_HZ, _BLOCK_SAMPLES)
  processor = engine.make_faust_processor('dawdreamer')
  processor.set_dsp_string(program)
  if not processor.compile():
    raise RuntimeError(f'the Faust program of model {name} does not compile')
  engine.load_graph([(processor, [])])
  return engine, processor


_SUSTAIN = (('attack_s', 0.01, 0.12), ('vibrato_hz', 4.0, 6.5),
            ('vibrato_depth', 0.0, 0.006))
_BREATH = (('breath_noise', 0.0, 0.08),)
_PLUCK = (('pluck_position', 0.1, 0.5), ('release_gain', 0.0, 0.3),
          ('tone_hz', 2500.0, 7000.0))
_KS_BASS = (('pluck_bright', 0.7, 4.0), ('pluck_position', 0.12, 0.45),
            ('sustain_t60_s', 2.0, 8.0), ('release_t60_s', 0.05, 0.3),
            ('pickup_position', 0.12, 0.4), ('tone_hz', 500.0, 2500.0))
_UPRIGHT_BASS = (('pluck_bright', 0.5, 2.0), ('pluck_position', 0.15, 0.45),
                 ('sustain_t60_s', 0.8, 2.5), ('release_t60_s', 0.05, 0.2),
                 ('pickup_position', 0.2, 0.5), ('tone_hz', 400.0, 1500.0),
                 ('body_hz', 70.0, 140.0), ('body_q', 1.0, 4.0),
                 ('body_level', 0.5, 3.0))
_BRASS_FM = (('attack_s', 0.03, 0.12), ('sustain_level', 0.6, 0.95),
             ('scoop_depth', 0.0, 0.03), ('vibrato_hz', 4.5, 6.5),
             ('vibrato_depth', 0.0, 0.005), ('max_index', 2.0, 5.0),
             ('bell_hz', 200.0, 900.0))
# The formant from a tuba's or horn's (350 Hz) to a muted trumpet's.
_BRASS_ADDITIVE = (('attack_s', 0.03, 0.12), ('sustain_level', 0.7, 0.95),
                   ('formant_hz', 350.0, 2200.0), ('width_oct', 0.8, 1.6),
                   ('vibrato_hz', 4.5, 6.5), ('vibrato_depth', 0.0, 0.005),
                   ('breath_noise', 0.0, 1.0), ('section_level', 0.0, 1.0),
                   ('section_cents', 3.0, 15.0))
_ROTOR = (('leslie_hz', 0.6, 7.0), ('leslie_depth', 0.0, 1.0))
# Sounding from the 16' (an octave below the key): checked there.
_DRAWBARS_16 = (('d16', 0.5, 1.0), ('d513', 0.0, 0.6), ('d8', 0.3, 1.0),
                ('d4', 0.0, 1.0), ('d223', 0.0, 0.5), ('d2', 0.0, 0.6),
                ('d135', 0.0, 0.3), ('d113', 0.0, 0.3), ('d1', 0.0, 0.5),
                ('perc_level', 0.0, 0.8), ('perc_third', 0.0, 1.0),
                ('perc_decay_s', 0.1, 0.6), ('click_level', 0.0, 0.3),
                ('drive', 0.0, 0.4)) + _ROTOR
# The 5 1/3' over the 8': their common period is the octave below the key.
_ROCK_DRAWBARS = (('d16', 0.0, 0.4), ('d513', 0.7, 1.2), ('d8', 0.4, 1.0),
                  ('d4', 0.0, 0.6), ('d223', 0.0, 0.4), ('d2', 0.0, 0.4),
                  ('d135', 0.0, 0.2), ('d113', 0.0, 0.2), ('d1', 0.0, 0.3),
                  ('perc_level', 0.0, 0.4), ('perc_third', 0.0, 1.0),
                  ('perc_decay_s', 0.1, 0.6), ('click_level', 0.0, 0.3),
                  ('drive', 0.3, 1.0), ('leslie_hz', 5.0, 7.0),
                  ('leslie_depth', 0.3, 1.0))
_CHURCH = (('attack_s', 0.02, 0.09), ('release_s', 0.05, 0.2),
           ('tilt', 0.8, 2.0), ('principal8', 0.3, 0.8), ('octave4', 0.6, 1.0),
           ('fifteenth2', 0.0, 0.5), ('mixture', 0.0, 0.4),
           ('detune', 0.0, 0.002), ('chiff_level', 0.0, 0.4))
_DRAWBARS = (('d16', 0.0, 0.3), ('d513', 0.0, 0.3), ('d8', 0.5, 1.0),
             ('d4', 0.0, 1.0), ('d223', 0.0, 1.0), ('d2', 0.0, 1.0),
             ('d135', 0.0, 0.6), ('d113', 0.0, 0.6), ('d1', 0.0, 0.6),
             ('perc_level', 0.0, 0.8), ('perc_third', 0.0, 1.0),
             ('perc_decay_s', 0.1, 0.6), ('click_level', 0.0, 0.3),
             ('chorus_depth', 0.0, 1.0))
_PIPES = (('attack_s', 0.02, 0.09), ('release_s', 0.05, 0.3),
          ('tilt', 0.8, 2.0), ('principal8', 0.4, 1.0), ('flute8', 0.0, 1.0),
          ('octave4', 0.0, 0.6), ('fifteenth2', 0.0, 0.4),
          ('detune', 0.0, 0.002), ('chiff_level', 0.0, 0.5))
_EPIANO = (('decay_s', 1.0, 4.0), ('index', 0.3, 2.5),
           ('index_decay_s', 0.2, 1.5), ('tine_index', 0.5, 4.0),
           ('tine_ratio', 11.0, 17.0), ('tine_level', 0.0, 0.5))
_HARPSICHORD = (('pluck_bright', 4.0, 14.0), ('pluck_position', 0.05, 0.15),
                ('sustain_t60_s', 2.0, 8.0), ('release_t60_s', 0.08, 0.3),
                ('four_foot', 0.0, 0.7), ('body_hz', 150.0, 500.0),
                ('body_level', 0.0, 2.0))
_CLAVINET = (('pluck_bright', 3.0, 12.0), ('pluck_position', 0.02, 0.1),
             ('sustain_t60_s', 1.0, 4.0), ('release_t60_s', 0.03, 0.1),
             ('pickup_position', 0.05, 0.2), ('tone_hz', 2000.0, 7000.0))
_PIANO = (('inharmonicity', 0.00002, 0.0004), ('hammer_position', 0.08, 0.2),
          ('tilt', 0.6, 1.5), ('decay_s', 1.5, 6.0), ('decay_growth', 0.1, 0.6),
          ('unison_cents', 0.3, 3.0))


def models() -> list[FaustModel]:
  """Every Faust model, ordered by family."""
  d = faust_dsp
  return [
      FaustModel('PluckedBass', 'bass', 'acoustic', (28, 64), d.PLUCKED_BASS,
                 _KS_BASS),
      FaustModel('ElectricBass', 'bass', 'electronic', (28, 64),
                 d.ELECTRIC_BASS, _KS_BASS + (('shelf_db', 3.0, 12.0),)),
      FaustModel('UprightBass', 'bass', 'acoustic', (28, 64), d.UPRIGHT_BASS,
                 _UPRIGHT_BASS),
      FaustModel('FMBrass', 'brass', 'acoustic', (40, 84), d.FM_BRASS,
                 _BRASS_FM),
      FaustModel('AdditiveBrass', 'brass', 'acoustic', (40, 84),
                 d.ADDITIVE_BRASS, _BRASS_ADDITIVE),
      FaustModel('Flute', 'flute', 'acoustic', (60, 90), d.FLUTE,
                 _SUSTAIN + _BREATH + (('mouth_position', 0.4, 0.6),)),
      FaustModel('Guitar', 'guitar', 'acoustic', (45, 88), d.GUITAR, _PLUCK),
      FaustModel('NylonGuitar', 'guitar', 'acoustic', (45, 88),
                 d.NYLON_GUITAR, _PLUCK),
      FaustModel('FMEPiano', 'keyboard', 'electronic', (28, 96), d.FM_EPIANO,
                 _EPIANO),
      FaustModel('AdditivePiano', 'keyboard', 'acoustic', (28, 100),
                 d.ADDITIVE_PIANO, _PIANO),
      FaustModel('Harpsichord', 'keyboard', 'acoustic', (36, 89),
                 d.HARPSICHORD, _HARPSICHORD),
      FaustModel('Clavinet', 'keyboard', 'electronic', (29, 96), d.CLAVINET,
                 _CLAVINET),
      FaustModel('ModalBar', 'mallet', 'acoustic', (53, 100), d.MODAL_BAR,
                 (('ratio2', 2.7, 4.0), ('ratio3', 5.1, 10.7),
                  ('gain2', 0.05, 0.5), ('gain3', 0.0, 0.3),
                  ('decay_s', 0.3, 3.0), ('decay_slope', 0.5, 1.5),
                  ('click_level', 0.0, 0.5), ('hardness_hz', 1000.0, 8000.0),
                  ('tremolo_depth', 0.0, 0.4), ('tremolo_hz', 3.0, 7.0))),
      FaustModel('DrawbarOrgan', 'organ', 'electronic', (36, 96),
                 d.DRAWBAR_ORGAN, _DRAWBARS),
      FaustModel('TonewheelOrgan16', 'organ', 'electronic', (41, 96),
                 d.TONEWHEEL_ORGAN_16, _DRAWBARS_16, sounding_octave=-1),
      FaustModel('RockOrgan', 'organ', 'electronic', (41, 96),
                 d.TONEWHEEL_ORGAN_16, _ROCK_DRAWBARS, sounding_octave=-1),
      FaustModel('PipeOrgan', 'organ', 'acoustic', (36, 96), d.PIPE_ORGAN,
                 _PIPES),
      FaustModel('ChurchOrgan', 'organ', 'acoustic', (36, 88), d.CHURCH_ORGAN,
                 _CHURCH),
      FaustModel('ReedOrgan', 'organ', 'acoustic', (36, 90), d.REED_ORGAN,
                 (('attack_s', 0.03, 0.12), ('tremolo_depth', 0.0, 0.15),
                  ('tremolo_hz', 4.0, 7.0), ('duty', 0.15, 0.5))),
      FaustModel('Clarinet', 'reed', 'acoustic', (50, 88), d.CLARINET,
                 _SUSTAIN + _BREATH + (('reed_stiffness', 0.3, 0.8),
                                       ('bell_opening', 0.3, 0.8))),
      FaustModel('Violin', 'string', 'acoustic', (45, 96), d.VIOLIN,
                 _SUSTAIN + (('bow_pressure', 0.2, 0.8),
                             ('bow_position', 0.5, 0.9))),
  ]
