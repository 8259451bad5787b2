"""Reading NSynth's examples.json: one split directory -> Notes.

The file as a whole must parse (otherwise the job stops before it starts,
see inputs.check_inputs); each entry is validated on its own, so one bad entry
is dead-lettered and never costs the good ones.
"""

import posixpath
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from beam_pipelines import accounting
from beam_pipelines import gcs
from beam_pipelines import output
from nsynth_contracts import examples_json
from nsynth_contracts import outcomes


def read_examples_json(split_dir: str) -> list[examples_json.RawEntry]:
  """Every entry of a split directory's examples.json (local or gs://).

  Raises:
    examples_json.ExamplesJsonError: naming the file when it is missing,
      unreadable or malformed.
    gcs.StorageUnavailableError: its store does not answer.
  """
  path = posixpath.join(split_dir, examples_json.EXAMPLES_JSON)
  try:
    if gcs.is_gcs(path):
      text = gcs.read_bytes(path)
    else:
      with FileSystems.open(path) as f:
        text = f.read()
  except gcs.StorageUnavailableError:
    raise
  except Exception as e:  # Beam wraps I/O errors per filesystem.
    raise examples_json.ExamplesJsonError(
        f'Cannot read {path}: {output.reason(e)}') from None
  return examples_json.parse_examples_json(path, text)


def _entries_of(split_dir: str, split: str) -> Iterator[tuple[str, Any]]:
  """(key, entry) pairs to validate, and tagged DeadLetters for entries that
  cannot even travel through the pipeline (strings that are not Unicode) or
  must not be used (duplicate keys, repeated fields)."""
  entries = read_examples_json(split_dir)
  accounting.count(outcomes.NOTES_READ_COUNTER, len(entries))
  json_path = posixpath.join(split_dir, examples_json.EXAMPLES_JSON)
  for entry in entries:
    problem = examples_json.entry_problem(entry)
    if problem:
      kind, reason = problem
      yield beam.pvalue.TaggedOutput(
          accounting.DEAD_LETTERS, outcomes.DeadLetter(
              note_str=examples_json.printable(entry.key), file=json_path,
              split=split, kind=kind, reason=reason))
    else:
      yield entry.key, examples_json.as_plain_json(entry.value)


def validated_note(item: tuple[str, Any], split_dir: str, split: str
                   ) -> Iterator[examples_json.Note]:
  """The entry as a Note, or a tagged DeadLetter naming the field at fault
  (anything raised is still one bad entry)."""
  key, entry = item
  try:
    yield examples_json.note_from_entry(key, entry, split_dir, split)
  except Exception as e:
    reason = (str(e) if isinstance(e, examples_json.EntryError)
              else f'cannot read the entry ({type(e).__name__})')
    yield beam.pvalue.TaggedOutput(accounting.DEAD_LETTERS, outcomes.DeadLetter(
        note_str=examples_json.printable(str(key)),
        file=posixpath.join(split_dir, examples_json.EXAMPLES_JSON),
        split=split, kind=examples_json.INVALID_METADATA, reason=reason))


class ReadNSynthSplit(beam.PTransform):
  """One NSynth split directory -> Notes (NOTES) and DeadLetters
  (DEAD_LETTERS).

  The entries are reshuffled before validation so that the expensive stages
  after it spread over every worker, not the one that read the file.
  """

  def __init__(self, split_dir: str, split: str):
    super().__init__()
    self._split_dir = split_dir
    self._split = split

  def expand(self, pbegin):
    entries = (pbegin
               | 'Directory' >> beam.Create([self._split_dir])
               | 'ReadExamplesJson' >> beam.FlatMap(
                   _entries_of, self._split).with_outputs(
                       accounting.DEAD_LETTERS, main=accounting.NOTES))
    validated = (entries[accounting.NOTES]
                 | 'Spread' >> beam.Reshuffle()
                 | 'Validate' >> beam.FlatMap(
                     validated_note, self._split_dir, self._split
                 ).with_outputs(accounting.DEAD_LETTERS, main=accounting.NOTES))
    dead_letters = ((entries[accounting.DEAD_LETTERS],
                     validated[accounting.DEAD_LETTERS])
                    | 'DeadLetters' >> beam.Flatten())
    return {accounting.NOTES: validated[accounting.NOTES],
            accounting.DEAD_LETTERS: dead_letters}
