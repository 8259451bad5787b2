"""NSynth's instrument families and sources, and the label vocabulary.

NSynth numbers its 11 families and 3 sources; those ids are facts of the
dataset. The label vocabulary is derived from the filters alone (kept sources,
dropped families), never from which families happen to occur in a run, so two
runs with the same filters always agree on label ids.
"""

import dataclasses
from collections.abc import Iterable
from collections.abc import Sequence

# NSynth's ids are the positions in these tuples.
NSYNTH_FAMILIES: tuple[str, ...] = (
    'bass', 'brass', 'flute', 'guitar', 'keyboard', 'mallet', 'organ', 'reed',
    'string', 'synth_lead', 'vocal')
NSYNTH_SOURCES: tuple[str, ...] = ('acoustic', 'electronic', 'synthetic')

# synth_lead has only synthetic notes in NSynth, so it cannot occur once the
# synthetic source is filtered out; every other family has non-synthetic notes.
FAMILIES_ONLY_FROM_SOURCES: dict[str, frozenset[str]] = {
    'synth_lead': frozenset({'synthetic'}),
}

DEFAULT_KEPT_SOURCES: tuple[str, ...] = ('acoustic', 'electronic')
DEFAULT_DROPPED_FAMILIES: tuple[str, ...] = ('vocal',)


def _check_names(names: Iterable[str], known: Sequence[str], what: str) -> None:
  unknown = sorted(set(names) - set(known))
  if unknown:
    raise ValueError(f'Unknown NSynth {what}: {unknown}; known: {list(known)}')


@dataclasses.dataclass(frozen=True)
class LabelVocabulary:
  """The families a model predicts, in NSynth id order; label id = position."""

  families: tuple[str, ...]

  def __post_init__(self):
    _check_names(self.families, NSYNTH_FAMILIES, 'families')
    order = [NSYNTH_FAMILIES.index(f) for f in self.families]
    if order != sorted(set(order)):
      raise ValueError(
          f'Vocabulary must list distinct families in NSynth id order, got '
          f'{list(self.families)}')

  @classmethod
  def from_filters(
      cls,
      kept_sources: Sequence[str] = DEFAULT_KEPT_SOURCES,
      dropped_families: Sequence[str] = DEFAULT_DROPPED_FAMILIES,
  ) -> 'LabelVocabulary':
    """The families that can pass the filters, in NSynth id order."""
    _check_names(kept_sources, NSYNTH_SOURCES, 'sources')
    _check_names(dropped_families, NSYNTH_FAMILIES, 'families')
    if not kept_sources:
      raise ValueError('At least one source must be kept.')
    families = tuple(
        family for family in NSYNTH_FAMILIES
        if family not in dropped_families and
        FAMILIES_ONLY_FROM_SOURCES.get(family, frozenset(NSYNTH_SOURCES))
        & set(kept_sources))
    if not families:
      raise ValueError('The filters leave no family to predict.')
    return cls(families)

  @property
  def num_classes(self) -> int:
    return len(self.families)

  def label_id(self, family: str) -> int:
    """Raises KeyError naming the family when it is not in the vocabulary."""
    try:
      return self.families.index(family)
    except ValueError:
      raise KeyError(
          f'Family {family!r} is not in the vocabulary {list(self.families)}'
      ) from None

  def family(self, label_id: int) -> str:
    if not 0 <= label_id < self.num_classes:
      raise KeyError(
          f'Label id {label_id} is outside the vocabulary '
          f'[0, {self.num_classes})')
    return self.families[label_id]

  def to_json(self) -> list[dict]:
    return [{'label_id': i, 'family': f,
             'nsynth_family_id': NSYNTH_FAMILIES.index(f)}
            for i, f in enumerate(self.families)]

  @classmethod
  def from_json(cls, entries: list[dict]) -> 'LabelVocabulary':
    ordered = sorted(entries, key=lambda e: e['label_id'])
    if [e['label_id'] for e in ordered] != list(range(len(ordered))):
      raise ValueError(f'Label ids must be 0..N-1, got {entries}')
    return cls(tuple(e['family'] for e in ordered))
