"""Which notes are written, and to which split.

A note keeps its input directory's split, or gets one by the split method
(a stable hash of its instrument or note, or leave-one-library-out); then
the filters (source, family, an optional cap per family) decide whether it
is written. Each note left out is a Filtered naming the first reason.
"""

import collections
import dataclasses
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Sequence

import apache_beam as beam

from beam_pipelines import accounting
from beam_pipelines import reading
from beam_pipelines import splits
from beam_pipelines.job_config import JobConfig
from nsynth_contracts import examples_json
from nsynth_contracts import labels


def assigned_split(note: examples_json.Note, method: splits.SplitMethod,
                   fractions: Sequence[float],
                   holdout_library: str = '') -> str | None:
  """The split `method` puts the note in (DIRECTORIES: its directory's), or
  None for a note a leave-one-library-out run uses in no split."""
  if method is splits.SplitMethod.DIRECTORIES:
    return note.split
  if method is splits.SplitMethod.LIBRARY:
    return splits.split_leaving_out(note.library, note.split, holdout_library)
  key = (note.instrument_str if method is splits.SplitMethod.INSTRUMENT
         else note.note_str)
  return splits.assign_split(key, fractions)


def placement(note: examples_json.Note, config: JobConfig,
              vocabulary: labels.LabelVocabulary
              ) -> tuple[str | None, str | None]:
  """(the split the note goes to, the first filter it fails: holdout,
  source, family; None if it passes them all)."""
  split = assigned_split(note, config.split_method, config.split_fractions,
                         config.holdout_library)
  reason = ('holdout' if split is None else
            'source' if note.source not in config.kept_sources else
            'family' if note.family not in vocabulary.families else None)
  return split, reason


def select_note(note: examples_json.Note, config: JobConfig,
                vocabulary: labels.LabelVocabulary
                ) -> Iterator[examples_json.Note]:
  """The note in its split, or a tagged Filtered naming the first filter it
  fails: holdout, source, family."""
  split, reason = placement(note, config, vocabulary)
  if reason:
    yield beam.pvalue.TaggedOutput(accounting.FILTERED,
                                   accounting.Filtered(note, reason))
  else:
    yield dataclasses.replace(note, split=split)


def notes_to_featurize(notes: Iterable[examples_json.Note],
                       config: JobConfig) -> int:
  """How many of these notes the job featurises: those the filters keep,
  at most the cap per split and family (SelectNotes' rules)."""
  vocabulary = config.vocabulary
  kept = collections.Counter()
  for note in notes:
    split, reason = placement(note, config, vocabulary)
    if not reason:
      kept[(split, note.family)] += 1
  cap = config.max_notes_per_family
  return sum(min(n, cap) if cap else n for n in kept.values())


def _keep_first_by_hash(
    group: tuple[tuple[str, str], Iterable[examples_json.Note]],
    max_notes: int) -> Iterator[examples_json.Note]:
  _, notes = group
  ordered = sorted(notes,
                   key=lambda n: splits.unit_interval_hash(n.note_str))
  yield from ordered[:max_notes]
  for note in ordered[max_notes:]:
    yield beam.pvalue.TaggedOutput(accounting.FILTERED,
                                   accounting.Filtered(note, 'cap'))


class CapPerFamily(beam.PTransform):
  """Keeps at most `max_notes` per (split, family), chosen by a stable hash.

  NOTES: the kept Notes; FILTERED: the rest, as Filtered('cap').
  """

  def __init__(self, max_notes: int):
    super().__init__()
    self._max_notes = max_notes

  def expand(self, notes):
    return (notes
            | 'KeyBySplitFamily' >> beam.Map(lambda n: ((n.split, n.family), n))
            | 'Group' >> beam.GroupByKey()
            | 'KeepFirst' >> beam.FlatMap(
                _keep_first_by_hash, self._max_notes).with_outputs(
                    accounting.FILTERED, main=accounting.NOTES))


class SelectNotes(beam.PTransform):
  """The input directories -> the notes to featurise (NOTES), each in its
  split; the notes left out (FILTERED: by holdout, source, family or cap),
  and the entries that are no usable note (DEAD_LETTERS)."""

  def __init__(self, config: JobConfig):
    super().__init__()
    self._config = config

  def expand(self, pbegin):
    config = self._config
    # Labelled by directory: several directories may feed one split.
    read = [pbegin | f'Read[{d}]' >> reading.ReadNSynthSplit(d, name)
            for d, name in config.inputs]
    kept = ([r[accounting.NOTES] for r in read]
            | 'AllNotes' >> beam.Flatten()
            | 'Select' >> beam.FlatMap(
                select_note, config, config.vocabulary).with_outputs(
                    accounting.FILTERED, main=accounting.NOTES))
    filtered = [kept[accounting.FILTERED]]
    notes = kept[accounting.NOTES]
    if config.max_notes_per_family:
      capped = notes | 'Cap' >> CapPerFamily(config.max_notes_per_family)
      notes = capped[accounting.NOTES]
      filtered.append(capped[accounting.FILTERED])
    return {
        accounting.NOTES: notes,
        accounting.FILTERED: filtered | 'AllFiltered' >> beam.Flatten(),
        accounting.DEAD_LETTERS: ([r[accounting.DEAD_LETTERS] for r in read]
                                  | 'ReadDeadLetters' >> beam.Flatten()),
    }
