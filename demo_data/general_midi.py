"""Which General MIDI programs stand in for which NSynth instruments.

Each program of the SoundFont that ships with pretty_midi becomes one NSynth
instrument with the family and source NSynth would give it, played over a
pitch range typical of the family. Programs with no NSynth counterpart
(pads, sound effects, percussion) are left out.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class GmInstrument:
  program: int          # 0-based General MIDI program
  family: str
  source: str


# (family, source) -> 0-based GM programs, in program order.
_PROGRAMS: dict[tuple[str, str], tuple[int, ...]] = {
    ('bass', 'acoustic'): (32,),
    ('bass', 'electronic'): (33, 34, 35, 36, 37),
    ('bass', 'synthetic'): (38, 39),
    ('brass', 'acoustic'): (56, 57, 58, 59, 60, 61),
    ('brass', 'synthetic'): (62, 63),
    ('flute', 'acoustic'): (72, 73, 74, 75, 76, 77, 78, 79),
    ('guitar', 'acoustic'): (24, 25, 104, 105, 106, 107),
    ('guitar', 'electronic'): (26, 27, 28, 29, 30, 31),
    ('keyboard', 'acoustic'): (0, 1, 3, 6, 8),
    ('keyboard', 'electronic'): (2, 4, 5, 7),
    ('mallet', 'acoustic'): (9, 10, 11, 12, 13, 14, 108, 112, 114),
    ('organ', 'acoustic'): (19, 20),
    ('organ', 'electronic'): (16, 17, 18),
    ('reed', 'acoustic'): (21, 22, 23, 64, 65, 66, 67, 68, 69, 70, 71, 109,
                           111),
    ('string', 'acoustic'): (15, 40, 41, 42, 43, 44, 45, 46, 48, 49, 110),
    ('string', 'synthetic'): (50, 51),
    ('synth_lead', 'synthetic'): (80, 81, 82, 83, 84, 86, 87),
    ('vocal', 'acoustic'): (52, 53),
    ('vocal', 'synthetic'): (54, 85),
}

# MIDI pitch ranges (inclusive), roughly where each family plays.
PITCH_RANGE: dict[str, tuple[int, int]] = {
    'bass': (28, 64),
    'brass': (40, 84),
    'flute': (60, 96),
    'guitar': (40, 88),
    'keyboard': (21, 108),
    'mallet': (53, 100),
    'organ': (36, 96),
    'reed': (40, 88),
    'string': (28, 96),
    'synth_lead': (36, 96),
    'vocal': (48, 79),
}


def instruments() -> list[GmInstrument]:
  """Every mapped program, ordered by family then source then program."""
  return [GmInstrument(program, family, source)
          for (family, source), programs in _PROGRAMS.items()
          for program in programs]
