"""The `stk` synthesis family: STK's physical and FM models as instruments.

The Synthesis ToolKit (the `synthesistoolkit` wheel: STK in C++ with its
rawwaves) carries waveguide models of bowed strings, lips, reeds, jets and
plucked strings, modal bars, and FM keyboards, organs and bells. Each model
below plays one NSynth family; an instrument is a uniform draw of its
controls within ranges where the model plays (demo_data.note_checks drops
the notes where it does not).

STK runs at 48 kHz and the notes are resampled to 16 kHz: its waveguides
tune their delay lines for the delay of their loop filters at high rates
(at 16 kHz the bowed string and the reeds play 30-200 cents sharp above
MIDI 64; at 48 kHz within 10 cents). STK's sample rate is global, so it is
set before any instrument is built and never changed.
"""

import dataclasses
import functools

import numpy as np
import soxr

from demo_data import note_checks
from demo_data import notes

RENDER_RATE_HZ = 48000
# (control name in the class's CONTROL_IDS, low, high) on STK's 0-128 scale.
ControlRange = tuple[str, float, float]
# FM operator frequency ratios an instrument may take, by operator.
RatioChoices = tuple[tuple[int, tuple[float, ...]], ...]


@functools.cache
def _toolkit():
  import synthesistoolkit
  synthesistoolkit.set_sample_rate(float(RENDER_RATE_HZ))
  return synthesistoolkit


def _reseed(stk, pitch: int, velocity: int) -> None:
  """STK's noise is C's rand(), which every STK constructor reseeds from the
  clock; seeding it from the note after construction makes notes the same
  on every run."""
  stk.Noise(1 + 128 * pitch + velocity)


@dataclasses.dataclass(frozen=True)
class StkControls:
  """One STK instrument: a draw of its model's controls."""
  control_values: tuple[tuple[str, float], ...]   # name -> 0-128, STK's scale
  operator_ratios: tuple[tuple[int, float], ...]  # FM operator -> f ratio
  amplitude_at_full_velocity: float               # note_on amplitude, 0-1
  detune_cents: float                             # the whole instrument's
  lowpass_hz: float = 0.0      # a bass amplifier's tone control; 0: none
  highpass_hz: float = 0.0     # a brass bell's radiation; 0: none


@dataclasses.dataclass(frozen=True)
class StkModel:
  """An STK class playing one NSynth family (demo_data.synthesis.SynthModel).

  Controls are sent before note_on: a modal bar's stick acts at the strike,
  and BandedWG's preset, sent later, resets the frequency. Brass's are sent
  after it too: its lip tension is relative to the note's frequency, which
  note_on resets.
  """
  name: str
  class_name: str
  family: str
  source: str
  pitch_range: tuple[int, int]
  controls: tuple[ControlRange, ...] = ()
  amplitude_range: tuple[float, float] = (0.6, 1.0)
  ratios: RatioChoices = ()
  # Played frequency / the note's: a model whose tone lies at a fixed ratio
  # to the frequency it is given (PercFlut's carriers sit a fifth up).
  frequency_ratio: float = 1.0
  # Brass's lip filter gains 1/f: the pressure that makes it buzz scales with f.
  amplitude_per_khz: bool = False
  max_detune_cents: float = 8.0
  constructor_args: tuple = ()
  controls_after_note_on: bool = False
  # (control, value at MIDI 52, change per semitone), set for each note as a
  # trombonist sets the slide: Brass's delay line is tuned for 22-44 kHz,
  # and at 48 kHz a fixed slide plays 160 cents sharp at MIDI 52 and in tune
  # at 88 (measured with note_checks' YIN).
  tuned_control: tuple[str, float, float] | None = None
  sounding_octave: int = 0
  # Drawn filters on the output (Hz ranges): an amplifier's tone control
  # darkens a bass string (sampled basses keep their fundamental strong
  # and their noise low); a bell radiates high harmonics better than low
  # ones, so a brass bore's output is high-passed (sampled brass has a weak
  # fundamental and leads with its third to sixth harmonics).
  lowpass_hz: tuple[float, float] | None = None
  highpass_hz: tuple[float, float] | None = None

  def draw(self, rng: np.random.Generator) -> StkControls:
    return StkControls(
        control_values=tuple((name, float(rng.uniform(low, high)))
                             for name, low, high in self.controls),
        operator_ratios=tuple(
            (op, float(rng.choice(choices) * rng.uniform(0.997, 1.003)))
            for op, choices in self.ratios),
        amplitude_at_full_velocity=float(rng.uniform(*self.amplitude_range)),
        detune_cents=float(rng.uniform(-1, 1) * self.max_detune_cents),
        lowpass_hz=(float(rng.uniform(*self.lowpass_hz))
                    if self.lowpass_hz else 0.0),
        highpass_hz=(float(rng.uniform(*self.highpass_hz))
                     if self.highpass_hz else 0.0))

  def render(self, controls: StkControls, pitch: int,
             velocity: int) -> np.ndarray:
    stk = _toolkit()
    instrument = getattr(stk, self.class_name)(*self.constructor_args)
    _reseed(stk, pitch, velocity)
    ids = getattr(type(instrument), 'CONTROL_IDS', {})
    for op, ratio in controls.operator_ratios:
      instrument.set_ratio(op, ratio)
    hz = (note_checks.midi_hz(pitch + controls.detune_cents / 100.0)
          * self.frequency_ratio)
    amplitude = controls.amplitude_at_full_velocity * (
        0.4 + 0.6 * velocity / 127.0)
    if self.amplitude_per_khz:
      amplitude *= hz / 1000.0
    values = list(controls.control_values)
    if self.tuned_control:
      name, at_52, per_semitone = self.tuned_control
      values.append((name, at_52 + per_semitone * (pitch - 52)))
    for name, value in values:
      instrument.control_change(ids[name], value)
    instrument.note_on(hz, amplitude)
    if self.controls_after_note_on:
      for name, value in values:
        instrument.control_change(ids[name], value)
    return _finish(instrument, controls.lowpass_hz, controls.highpass_hz)


def _finish(instrument, lowpass_hz: float = 0.0,
            highpass_hz: float = 0.0) -> np.ndarray:
  """Holds the started note 3 s, releases it for 1 s, through second-order
  low- and high-pass filters where set, at the model's own peak level (the
  filters shape the spectrum; whether the model sounds is its own): float64
  [64000]."""
  held = instrument.tick(int(notes.HOLD_SECONDS * RENDER_RATE_HZ))[0]
  instrument.note_off(0.5)
  released = instrument.tick(int(notes.RELEASE_SECONDS * RENDER_RATE_HZ))[0]
  out = np.concatenate([held, released])
  if lowpass_hz or highpass_hz:
    from scipy import signal
    peak = np.max(np.abs(out))
    for hz, kind in ((lowpass_hz, 'low'), (highpass_hz, 'high')):
      if hz:
        out = signal.sosfilt(signal.butter(2, hz, kind, output='sos',
                                           fs=RENDER_RATE_HZ), out)
    out *= peak / max(np.max(np.abs(out)), 1e-12)
  return soxr.resample(out, RENDER_RATE_HZ, notes.SAMPLE_RATE_HZ)


@dataclasses.dataclass(frozen=True)
class PianoControls:
  """A piano-like instrument: a few stiff strings struck together."""
  strings: int
  spread_cents: float                  # detuning between unison strings
  string_stretch: float                # StifKarp's stiffness, 0-128
  pickup_position: float               # 0-128: where the sound is taken
  string_sustain: float                # 0-128
  amplitude_at_full_velocity: float


@dataclasses.dataclass(frozen=True)
class StkPiano:
  """Two or three StifKarp strings a few cents apart, as a piano's unison
  strings are: their beating and stiffness (stretched partials) are what
  separates a piano from a guitar's single plucked string."""
  name: str = 'PianoStrings'
  family: str = 'keyboard'
  source: str = 'acoustic'
  pitch_range: tuple[int, int] = (28, 100)
  sounding_octave: int = 0

  def draw(self, rng: np.random.Generator) -> PianoControls:
    return PianoControls(
        strings=int(rng.integers(2, 4)),
        spread_cents=float(rng.uniform(0.5, 4.0)),
        string_stretch=float(rng.uniform(0, 5)),
        pickup_position=float(rng.uniform(5, 50)),
        string_sustain=float(rng.uniform(90, 125)),
        amplitude_at_full_velocity=float(rng.uniform(0.6, 1.0)))

  def render(self, controls: PianoControls, pitch: int,
             velocity: int) -> np.ndarray:
    stk = _toolkit()
    amplitude = controls.amplitude_at_full_velocity * (
        0.3 + 0.7 * velocity / 127.0)
    total = 0.0
    for k in range(controls.strings):
      string = stk.StifKarp()
      _reseed(stk, pitch + k, velocity)
      ids = stk.StifKarp.CONTROL_IDS
      string.control_change(ids['string_stretch'], controls.string_stretch)
      string.control_change(ids['pickup_position'], controls.pickup_position)
      string.control_change(ids['string_sustain'], controls.string_sustain)
      offset = (k - (controls.strings - 1) / 2.0) * controls.spread_cents
      string.note_on(note_checks.midi_hz(pitch + offset / 100.0), amplitude)
      total = total + _finish(string)
    return total / controls.strings


def _bass(name: str, class_name: str, controls: tuple[ControlRange, ...],
          **kwargs) -> StkModel:
  return StkModel(name, class_name, 'bass', 'acoustic', (28, 64), controls,
                  lowpass_hz=(400.0, 2000.0), **kwargs)


_SUSTAINED_VIBRATO = (('vibrato_frequency', 25, 70), ('vibrato_gain', 0, 12))
_FM_LFO = (('lfo_speed', 10, 70), ('lfo_depth', 0, 6))
# StifKarp's stretch (its allpass dispersion) above about 5 throws its pitch
# off by octaves at some notes.
_STIFF_STRING = (('pickup_position', 5, 120), ('string_stretch', 0, 5),
                 ('string_sustain', 70, 127))
# A bass string: stiff, but not a piano's.
_STIFF_BASS = (('pickup_position', 5, 120), ('string_stretch', 0, 1.5),
               ('string_sustain', 90, 127))
_MANDOLIN = (('body_size', 10, 128), ('pluck_position', 10, 110),
             ('string_detuning', 0, 24), ('string_sustain', 80, 128),
             ('microphone_position', 0, 128))
_GUITAR = (('pluck_position', 10, 110), ('loop_gain', 100, 127),
           ('bridge_coupling_gain', 0, 128), ('pick_filter_pole', 0, 128))


# Every STK model, ordered by family.
_MODELS = (
    _bass('StifKarpBass', 'StifKarp', _STIFF_BASS),
    _bass('PluckedBass', 'Plucked', ()),
    _bass('GuitarBass', 'Guitar', _GUITAR, constructor_args=(1,)),
    StkModel('Brass', 'Brass', 'brass', 'acoustic', (52, 88),
             (('lip_tension', 59, 65),) + _SUSTAINED_VIBRATO,
             amplitude_range=(0.22, 0.34), amplitude_per_khz=True,
             max_detune_cents=0, controls_after_note_on=True,
             tuned_control=('slide_length', 78.0, -0.52),
             highpass_hz=(300.0, 1200.0)),
    StkModel('Flute', 'Flute', 'flute', 'acoustic', (60, 96),
             (('jet_delay', 62, 84), ('noise_gain', 0, 50))
             + _SUSTAINED_VIBRATO),
    StkModel('BlowBotl', 'BlowBotl', 'flute', 'acoustic', (60, 90),
             (('noise_gain', 0, 60),) + _SUSTAINED_VIBRATO),
    StkModel('PercFlut', 'PercFlut', 'flute', 'acoustic', (60, 96),
             (('total_modulator_index', 10, 100),
              ('modulator_crossfade', 10, 110)) + _FM_LFO,
             frequency_ratio=1 / 1.5),
    StkModel('Plucked', 'Plucked', 'guitar', 'acoustic', (40, 84), ()),
    StkModel('StifKarp', 'StifKarp', 'guitar', 'acoustic', (40, 84),
             _STIFF_STRING),
    StkModel('Mandolin', 'Mandolin', 'guitar', 'acoustic', (48, 88),
             _MANDOLIN),
    StkModel('Guitar', 'Guitar', 'guitar', 'acoustic', (40, 84), _GUITAR,
             constructor_args=(1,)),
    StkModel('Rhodey', 'Rhodey', 'keyboard', 'electronic', (28, 96),
             (('modulator_index_one', 10, 110),
              ('crossfade_of_outputs', 10, 118)) + _FM_LFO),
    StkModel('Wurley', 'Wurley', 'keyboard', 'electronic', (28, 96),
             (('modulator_index_one', 10, 110),
              ('crossfade_of_outputs', 10, 118)) + _FM_LFO),
    StkPiano(),
    # modal_preset: STK truncates it to one of its 9 presets (marimba,
    # vibraphone, agogo, wood1, reso, wood2, beats, two_fixed, clump).
    StkModel('ModalBar', 'ModalBar', 'mallet', 'acoustic', (53, 100),
             (('modal_preset', 0, 8.99), ('stick_hardness', 10, 120),
              ('stick_position', 10, 110), ('direct_stick_mix', 0, 60))),
    # Presets 0-1: uniform and tuned bars, struck (set_striking 128).
    StkModel('BandedWG', 'BandedWG', 'mallet', 'acoustic', (53, 96),
             (('instrument_presets', 0, 1.99), ('set_striking', 127, 128),
              ('bow_pressure', 20, 110))),
    # Integer modulator ratios: STK's own 1.414 puts a sideband at 0.41 f,
    # and the bell sounds (and YIN hears) more than an octave down.
    StkModel('TubeBell', 'TubeBell', 'mallet', 'acoustic', (53, 96),
             (('modulator_index_one', 10, 110),
              ('crossfade_of_outputs', 20, 108)),
             ratios=((1, (2.0, 3.0, 4.0)), (3, (2.0, 3.0, 4.0)))),
    # Operators 0-3 are four summed sines (drawbars); ratios drawn from
    # the footages at or above 8'.
    StkModel('BeeThree', 'BeeThree', 'organ', 'electronic', (36, 96),
             (('operator_4_feedback_gain', 0, 100),
              ('operator_3_gain', 0, 128)) + _FM_LFO,
             ratios=((1, (2.0, 3.0, 4.0)), (2, (3.0, 4.0, 5.0, 6.0)),
                     (3, (4.0, 6.0, 8.0)))),
    StkModel('Clarinet', 'Clarinet', 'reed', 'acoustic', (40, 88),
             (('reed_stiffness', 30, 100), ('noise_gain', 0, 40))
             + _SUSTAINED_VIBRATO, amplitude_range=(0.5, 0.9)),
    StkModel('Saxofony', 'Saxofony', 'reed', 'acoustic', (40, 84),
             (('blow_position', 55, 75), ('reed_stiffness', 30, 100),
              ('reed_aperture', 30, 100), ('noise_gain', 0, 40))),
    # BlowHole plays 3 cents sharper each semitone up: 50 cents at MIDI 52.
    StkModel('BlowHole', 'BlowHole', 'reed', 'acoustic', (40, 52),
             (('reed_stiffness', 30, 100), ('noise_gain', 0, 40))
             + _SUSTAINED_VIBRATO),
    StkModel('Bowed', 'Bowed', 'string', 'acoustic', (28, 96),
             (('bow_pressure', 70, 120), ('bow_motion', 20, 100))
             + _SUSTAINED_VIBRATO),
)


def models() -> list:
  """Every STK model, ordered by family."""
  return list(_MODELS)
