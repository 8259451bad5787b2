"""Reading a directory of labelled recordings (nsynth_contracts.
recordings_layout): labels.json parsed as strictly as examples.json, each
label validated on its own, so one bad label costs only its recording.

Read by the Beam job's --recordings and by the trainer's phrase report,
each through its own file system (nsynth_common.storage): Beam's for the
job, whose launcher never imports TensorFlow; TensorFlow's for the trainer,
which never imports Beam.
"""

import dataclasses
import os
import posixpath
from collections.abc import Iterator
from typing import Any

from nsynth_common import storage
from nsynth_contracts import audio_decoding
from nsynth_contracts import examples_json
from nsynth_contracts import labels
from nsynth_contracts import outcomes
from nsynth_contracts import recordings_layout as layout


class RecordingsError(ValueError):
  """A recordings directory as a whole is unusable; the message names it."""


def split_of(directory: str) -> str:
  """`.../phrases-valid` -> `valid` (the rule of every split directory).

  Raises:
    RecordingsError: naming the directory when it names no split.
  """
  try:
    return examples_json.split_name_from_dir(directory)
  except ValueError as e:
    raise RecordingsError(str(e)) from None


@dataclasses.dataclass(frozen=True)
class Recording:
  name: str            # its file name, the key in labels.json
  path: str
  split: str
  family: str
  source: str
  instrument_str: str
  library: str = ''


def read_labels(directory: str, files: storage.Listing | None = None
                ) -> list[examples_json.RawEntry]:
  """Every entry of a directory's labels.json, duplicates included (parsed
  as examples.json is, with the same per-entry checks).

  Args:
    files: how to read it (default: storage.listing_for(directory)).

  Raises:
    RecordingsError: naming the file when it is missing or malformed.
  """
  path = posixpath.join(directory, layout.LABELS_JSON)
  try:
    text = (files or storage.listing_for(directory)).read_bytes(path)
  except Exception as e:
    raise RecordingsError(f'Cannot read {path}: {e}') from None
  try:
    return examples_json.parse_examples_json(path, text)
  except examples_json.ExamplesJsonError as e:
    raise RecordingsError(str(e).replace('keyed by note_str',
                                         'keyed by file name')) from None


def recording_from_label(name: str, entry: Any, directory: str,
                         split: str) -> Recording:
  """Raises examples_json.EntryError naming the field at fault."""
  if not isinstance(entry, dict):
    raise examples_json.EntryError('the label is not an object')
  for field in (layout.FAMILY, layout.SOURCE):
    if not isinstance(entry.get(field), str):
      raise examples_json.EntryError(f'missing or mistyped field {field!r}')
  if entry[layout.FAMILY] not in labels.NSYNTH_FAMILIES:
    raise examples_json.EntryError(
        f'unknown family {entry[layout.FAMILY]!r}')
  if entry[layout.SOURCE] not in labels.NSYNTH_SOURCES:
    raise examples_json.EntryError(
        f'unknown source {entry[layout.SOURCE]!r}')
  problem = examples_json.note_str_problem(name)
  suffixes = audio_decoding.RECORDING_SUFFIXES
  if problem or not name.lower().endswith(suffixes):
    raise examples_json.EntryError(
        problem or f'{name!r} is not a {"/".join(suffixes)} file name')
  return Recording(
      name=name, path=layout.audio_path(directory, name), split=split,
      family=entry[layout.FAMILY], source=entry[layout.SOURCE],
      instrument_str=str(entry.get(layout.INSTRUMENT_STR) or
                         os.path.splitext(name)[0]),
      library=str(entry.get(layout.LIBRARY, '')))


def recordings_of(directory: str, files: storage.Listing | None = None
                  ) -> Iterator[Recording | outcomes.DeadLetter]:
  """Each label of the directory as a Recording, or as the DeadLetter that
  says why it cannot be one.

  Args:
    files: how to read labels.json (default: storage.listing_for(directory)).

  Raises:
    RecordingsError: the directory's name or its labels.json is unusable.
  """
  split = split_of(directory)
  for entry in read_labels(directory, files):
    problem = examples_json.entry_problem(entry)
    if problem:
      kind, reason = problem
    else:
      try:
        yield recording_from_label(entry.key, examples_json.as_plain_json(
            entry.value), directory, split)
        continue
      except Exception as e:
        kind = examples_json.INVALID_METADATA
        reason = (str(e) if isinstance(e, examples_json.EntryError)
                  else f'cannot read the label ({type(e).__name__})')
    yield outcomes.DeadLetter(
        examples_json.printable(str(entry.key)),
        posixpath.join(directory, layout.LABELS_JSON), split, kind, reason,
        what=outcomes.RECORDING)
