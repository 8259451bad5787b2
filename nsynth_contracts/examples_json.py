"""NSynth's examples.json: reading it and validating each entry; and the
split a directory of notes (or of recordings) feeds, named after it.

The file as a whole must parse (otherwise the job stops before it starts);
each entry is validated on its own, so one bad entry is dead-lettered and
never costs the good ones. JSON itself allows what a dataset must not hold:
the same key twice (json.loads keeps the last one silently) and strings that
are not Unicode (lone surrogate escapes such as "\\ud800"). Both are caught
here, per entry.
"""

import dataclasses
import json
import posixpath
import re
from typing import Any

from nsynth_contracts import labels

EXAMPLES_JSON = 'examples.json'
AUDIO_DIR = 'audio'
# A note's file is audio/<note_str>.wav; POSIX file systems allow 255 bytes.
MAX_FILE_NAME_BYTES = 255
_WAV_SUFFIX = '.wav'

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


def split_name_from_dir(directory: str) -> str:
  """The split a directory feeds: its name after the last dash, lower-cased
  (`.../nsynth-valid/` -> `valid`, `phrases-train` -> `train`); a name
  without a dash is the split's name itself.

  Raises:
    ValueError: naming the directory when its name cannot be a split name.
  """
  name = posixpath.basename(directory.rstrip('/')).rsplit('-', 1)[-1].lower()
  if not re.fullmatch(r'[a-z][a-z0-9_]*', name):
    raise ValueError(f'Cannot name a split after directory {directory!r}: '
                     f'expected e.g. nsynth-train, nsynth-valid, '
                     f'phrases-test')
  return name


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
  library: str = ''         # the demo's sample library; NSynth has none


@dataclasses.dataclass(frozen=True)
class RawEntry:
  """One top-level member of examples.json, exactly as the file has it.

  Objects keep their members as (name, value) pairs, so that a field
  written twice is still visible. `copies` counts the entries with this key;
  for a key given more than once, `duplicate` says what this copy is:
  'repeat' (identical to the first, which is used) or 'conflict' (the copies
  differ, so none is used: the file does not say which is right).
  """
  key: str
  value: Any
  copies: int = 1
  duplicate: str | None = None


class _Members(list):
  """A JSON object as the list of its (name, value) pairs, in file order."""


class _HugeNumber(str):
  """An integer too long to be any field's value (and for Python to parse:
  4,300 digits raise); kept as text so one entry, not the file, fails."""


def _parse_int(text: str):
  return int(text) if len(text) <= 30 else _HugeNumber(text)


# Deeper than this, an entry is no NSynth entry (and recursion would fail).
MAX_NESTING = 32


def _too_deep(value, limit: int = MAX_NESTING) -> bool:
  """Whether `value` nests objects or arrays deeper than `limit` (iterative:
  a deep entry must not exhaust the stack that checks it)."""
  pending = [(value, 1)]
  while pending:
    item, depth = pending.pop()
    if isinstance(item, _Members):
      children = [member for _, member in item]
    elif isinstance(item, list):
      children = item
    else:
      continue
    if depth > limit:
      return True
    pending += [(child, depth + 1) for child in children]
  return False


def short(value, limit: int = 60) -> str:
  """repr(value), cut to `limit` characters for a message."""
  text = repr(value)
  return text if len(text) <= limit else text[:limit - 3] + '...'


def parse_examples_json(path: str, text: str | bytes) -> list[RawEntry]:
  """Every top-level entry of examples.json, duplicates included.

  Raises:
    ExamplesJsonError: naming `path`, when it is not a JSON object of objects.
  """
  try:
    data = json.loads(text, object_pairs_hook=_Members, parse_int=_parse_int)
  except (ValueError, UnicodeDecodeError, RecursionError) as e:
    raise ExamplesJsonError(f'{path} is not valid JSON: {e}') from e
  if not isinstance(data, _Members):
    raise ExamplesJsonError(
        f'{path} must hold one JSON object keyed by note_str, '
        f'found a {_json_type(data)}')
  copies, first_value, conflicting = {}, {}, set()
  for key, value in data:
    copies[key] = copies.get(key, 0) + 1
    if key not in first_value:
      first_value[key] = value
    elif value != first_value[key]:
      conflicting.add(key)
  entries, seen = [], set()
  for key, value in data:
    duplicate = None
    if key in conflicting:
      duplicate = 'conflict'
    elif key in seen:
      duplicate = 'repeat'
    seen.add(key)
    entries.append(RawEntry(key, value, copies[key], duplicate))
  return entries


def _json_type(value) -> str:
  if isinstance(value, _Members):
    return 'object'
  if isinstance(value, _HugeNumber):
    return 'number of more than 30 digits'
  return {list: 'array', str: 'string', bool: 'boolean', type(None): 'null'
          }.get(type(value), type(value).__name__)


def printable(text: str) -> str:
  """`text` with anything UTF-8 cannot encode escaped, for messages."""
  return text.encode('utf-8', 'backslashreplace').decode('utf-8')


def _is_unicode(text: str) -> bool:
  try:
    text.encode('utf-8')
    return True
  except UnicodeEncodeError:
    return False


def _first_non_unicode(value, where: str) -> str | None:
  """The path of the first string that is not valid Unicode, or None."""
  if isinstance(value, str):
    return None if _is_unicode(value) else where
  if isinstance(value, _Members):
    for name, member in value:
      if not _is_unicode(name):
        return f'{where}: a field name'
      found = _first_non_unicode(member, f'field {name!r}')
      if found:
        return found
  if isinstance(value, list):
    for member in value:
      found = _first_non_unicode(member, where)
      if found:
        return found
  return None


DUPLICATE_NOTE = 'duplicate_note'
INVALID_METADATA = 'invalid_metadata'


def entry_problem(entry: RawEntry) -> tuple[str, str] | None:
  """(dead-letter kind, reason) if this entry must go before anything else
  reads it, else None.

  Catches what would otherwise break the pipeline itself (strings that
  cannot be encoded) or vanish silently (a key or a field given twice).
  """
  if not _is_unicode(entry.key):
    return INVALID_METADATA, ('the note_str key is not valid Unicode (a lone '
                              'surrogate escape)')
  if _too_deep(entry.value):
    return INVALID_METADATA, (f'the entry nests deeper than {MAX_NESTING} '
                              f'levels')
  found = _first_non_unicode(entry.value, 'the entry')
  if found:
    return INVALID_METADATA, (f'{found} holds a string that is not valid '
                              f'Unicode (a lone surrogate escape)')
  if entry.duplicate == 'repeat':
    return DUPLICATE_NOTE, (f'examples.json holds {entry.copies} identical '
                            f'entries for this note_str; the first is used')
  if entry.duplicate == 'conflict':
    return DUPLICATE_NOTE, (f'examples.json holds {entry.copies} different '
                            f'entries for this note_str; none is used, since '
                            f'the file does not say which is right')
  if isinstance(entry.value, _Members):
    names = [name for name, _ in entry.value]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
      return INVALID_METADATA, f'field {repeated[0]!r} is given more than once'
  return None


def member(value, name: str):
  """The first member `name` of a parsed object, or None (no recursion)."""
  if isinstance(value, _Members):
    for key, item in value:
      if key == name:
        return item
  return None


def as_plain_json(value):
  """A parsed value with every object as a dict (after `entry_problem`)."""
  if isinstance(value, _Members):
    return {name: as_plain_json(member) for name, member in value}
  if isinstance(value, list):
    return [as_plain_json(member) for member in value]
  return value


def note_str_problem(note_str: str) -> str | None:
  """Why `note_str` cannot name a file audio/<note_str>.wav, or None."""
  if not note_str:
    return 'note_str is empty'
  if '\0' in note_str:
    return 'note_str contains a NUL byte, which no file name can hold'
  if '/' in note_str or '\\' in note_str or note_str.startswith('.'):
    return (f'note_str {short(note_str)} is not a plain file name (a path '
            f'separator or a leading dot)')
  size = len((note_str + _WAV_SUFFIX).encode('utf-8'))
  if size > MAX_FILE_NAME_BYTES:
    return (f'note_str is {size - len(_WAV_SUFFIX)} bytes long; with .wav '
            f'it exceeds the {MAX_FILE_NAME_BYTES}-byte limit of file names')
  return None


def note_from_entry(key: str, entry, split_dir: str, split: str) -> Note:
  """Validates one entry of examples.json.

  Raises:
    EntryError: naming the field that is missing, mistyped or unknown.
  """
  if not isinstance(entry, dict):
    raise EntryError(f'entry is a {_json_type(entry)}, not an object')
  for field, kind in _REQUIRED_FIELDS.items():
    if field not in entry:
      raise EntryError(f'missing field {field!r}')
    value = entry[field]
    # bool is an int subclass in Python; a JSON true is no pitch.
    if not isinstance(value, kind) or isinstance(value, bool):
      raise EntryError(f'field {field!r} should be {kind.__name__}, '
                       f'got {_json_type(value)} {short(value)}')
  if entry['note_str'] != key:
    raise EntryError(f'field \'note_str\' is {short(entry["note_str"])} but '
                     f'the entry is keyed {short(key)}')
  family = entry['instrument_family_str']
  if family not in labels.NSYNTH_FAMILIES:
    raise EntryError(f'unknown instrument_family_str {short(family)}')
  source = entry['instrument_source_str']
  if source not in labels.NSYNTH_SOURCES:
    raise EntryError(f'unknown instrument_source_str {short(source)}')
  if not 0 <= entry['pitch'] <= 127:
    raise EntryError(f'field \'pitch\' {entry["pitch"]} is not a MIDI pitch')
  if not 0 <= entry['velocity'] <= 127:
    raise EntryError(
        f'field \'velocity\' {entry["velocity"]} is not a MIDI velocity')
  if not 0 <= entry['instrument'] < 2**63:
    raise EntryError(f'field \'instrument\' {entry["instrument"]} is not a '
                     f'non-negative int64')
  problem = note_str_problem(key)
  if problem:
    raise EntryError(problem)
  library = entry.get('library', '')
  if not isinstance(library, str):
    raise EntryError(f'field \'library\' should be str, got '
                     f'{_json_type(library)}')
  return Note(
      note_str=key,
      instrument=entry['instrument'],
      instrument_str=entry['instrument_str'],
      pitch=entry['pitch'],
      velocity=entry['velocity'],
      family=family,
      source=source,
      audio_path=posixpath.join(split_dir, AUDIO_DIR, key + _WAV_SUFFIX),
      split=split,
      library=library)
