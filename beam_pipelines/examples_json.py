"""NSynth's examples.json: reading it and validating each entry.

The file as a whole must parse (otherwise the job stops before it starts);
each entry is validated on its own, so one bad entry is dead-lettered and
never costs the good ones.
"""

from __future__ import annotations

import dataclasses
import json
import posixpath

from nsynth_contracts import labels

EXAMPLES_JSON = 'examples.json'
AUDIO_DIR = 'audio'

# Field -> accepted type, for the fields the job reads.
_REQUIRED_FIELDS = {
    'note_str': str,
    'instrument': int,
    'instrument_str': str,
    'pitch': int,
    'velocity': int,
    'instrument_family_str': str,
    'instrument_source_str': str,
}


class ExamplesJsonError(ValueError):
  """examples.json as a whole is unusable; the message names the file."""


class EntryError(ValueError):
  """One entry of examples.json is unusable; the message names the field."""


@dataclasses.dataclass(frozen=True)
class Note:
  """What the job needs to know about one NSynth note."""
  note_str: str
  instrument: int
  instrument_str: str
  pitch: int
  velocity: int
  family: str
  source: str
  audio_path: str
  split: str                # its input directory's split, until reassigned


def parse_examples_json(path: str, text: str | bytes) -> dict:
  """The top-level object of examples.json, keyed by note_str.

  Raises:
    ExamplesJsonError: naming `path`, when it is not a JSON object of objects.
  """
  try:
    data = json.loads(text)
  except (ValueError, UnicodeDecodeError) as e:
    raise ExamplesJsonError(f'{path} is not valid JSON: {e}') from e
  if not isinstance(data, dict):
    raise ExamplesJsonError(
        f'{path} must hold one JSON object keyed by note_str, '
        f'found a {type(data).__name__}')
  return data


def note_from_entry(key: str, entry, split_dir: str, split: str) -> Note:
  """Validates one entry of examples.json.

  Raises:
    EntryError: naming the field that is missing, mistyped or unknown.
  """
  if not isinstance(entry, dict):
    raise EntryError(f'entry is a {type(entry).__name__}, not an object')
  for field, kind in _REQUIRED_FIELDS.items():
    if field not in entry:
      raise EntryError(f'missing field {field!r}')
    value = entry[field]
    # bool is an int subclass in Python; a JSON true is no pitch.
    if not isinstance(value, kind) or isinstance(value, bool):
      raise EntryError(f'field {field!r} should be {kind.__name__}, '
                       f'got {type(value).__name__} {value!r}')
  if entry['note_str'] != key:
    raise EntryError(f'field \'note_str\' is {entry["note_str"]!r} but the '
                     f'entry is keyed {key!r}')
  family = entry['instrument_family_str']
  if family not in labels.NSYNTH_FAMILIES:
    raise EntryError(f'unknown instrument_family_str {family!r}')
  source = entry['instrument_source_str']
  if source not in labels.NSYNTH_SOURCES:
    raise EntryError(f'unknown instrument_source_str {source!r}')
  if not 0 <= entry['pitch'] <= 127:
    raise EntryError(f'field \'pitch\' {entry["pitch"]} is not a MIDI pitch')
  if not 0 <= entry['velocity'] <= 127:
    raise EntryError(
        f'field \'velocity\' {entry["velocity"]} is not a MIDI velocity')
  if '/' in key or key.startswith('.'):
    raise EntryError(f'note_str {key!r} is not a plain file name')
  return Note(
      note_str=key,
      instrument=entry['instrument'],
      instrument_str=entry['instrument_str'],
      pitch=entry['pitch'],
      velocity=entry['velocity'],
      family=family,
      source=source,
      audio_path=posixpath.join(split_dir, AUDIO_DIR, key + '.wav'),
      split=split)
