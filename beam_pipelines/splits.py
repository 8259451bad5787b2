"""Which split a note belongs to: deterministic, from a stable hash.

hashlib, never Python's salted `hash()`, so every worker and every run agree.
"""

import enum
from collections.abc import Sequence

from nsynth_contracts import stable_random

SPLIT_NAMES = ('train', 'valid', 'test')


class SplitMethod(enum.Enum):
  """How notes are assigned to splits; recorded in the manifest."""
  DIRECTORIES = 'directories'   # one input directory per split, as given
  INSTRUMENT = 'instrument'     # one directory split by instrument hash
  NOTE = 'note'                 # one directory split by note hash (leaks)
  LIBRARY = 'library'           # leave one sample library out

  @property
  def description(self) -> str:
    return {
        SplitMethod.DIRECTORIES:
            'Each split is an input directory; NSynth\'s official splits '
            'keep valid/test instruments out of train.',
        SplitMethod.INSTRUMENT:
            'One directory split by a hash of instrument_str: no instrument '
            'is in two splits, so valid/test measure unseen instruments.',
        SplitMethod.NOTE:
            'One directory split by a hash of note_str, as the blog did: the '
            'same instruments appear in every split, which overstates '
            'accuracy on new instruments.',
        SplitMethod.LIBRARY:
            'Leave one library out: test is the held-out sample library\'s '
            'valid and test instruments; train and valid are the other '
            'libraries\' train and valid directories, so test holds '
            'programs never trained on from a library never heard.',
    }[self]


def unit_interval_hash(key: str) -> float:
  """A stable, uniform number in [0, 1) for a string."""
  return stable_random.unit_interval(key)


def assign_split(key: str, fractions: Sequence[float]) -> str:
  """train/valid/test for a key, with the given fractions (summing to 1)."""
  position = unit_interval_hash(key)
  bound = 0.0
  for name, fraction in zip(SPLIT_NAMES, fractions):
    bound += fraction
    if position < bound:
      return name
  return SPLIT_NAMES[len(fractions) - 1]


def parse_fractions(text: str) -> tuple[float, float, float]:
  """'0.8,0.1,0.1' -> (0.8, 0.1, 0.1); raises ValueError with the reason."""
  try:
    values = tuple(float(v) for v in text.split(','))
  except ValueError:
    raise ValueError(f'split fractions {text!r} are not numbers') from None
  if (len(values) != 3 or any(v < 0 for v in values)
      or abs(sum(values) - 1) > 1e-6):
    raise ValueError(f'split fractions {text!r} must be three non-negative '
                     f'numbers (train,valid,test) that sum to 1')
  return values



def split_leaving_out(library: str, directory_split: str,
                      holdout_library: str) -> str | None:
  """The split of a note when one library is held out, or None to leave it
  out of every split.

  Test is the held-out library's notes from its valid and test directories;
  train and valid are the other libraries' train and valid directories. So
  test holds instruments from a library never heard *and* programs never
  trained on in any library: the General MIDI libraries share many of their
  samples (the same program is often the very same recording), so holding
  out the library alone would test on sounds heard in training.
  """
  if library == holdout_library:
    return 'test' if directory_split in ('valid', 'test') else None
  return directory_split if directory_split in ('train', 'valid') else None
