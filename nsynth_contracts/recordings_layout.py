"""A directory of labelled recordings: what nsynth-tfrecords --recordings
and nsynth-evaluate --phrases read, and what the demo's phrases are.

  <dir>/labels.json   {"<file>": {"family": "guitar", "source": "acoustic",
                                  "instrument_str": "...", "library": "..."}}
  <dir>/audio/<file>  WAV, FLAC, OGG or MP3, any length, rate and channels

A directory named `<anything>-<split>` (phrases-train) holds that split.
nsynth_contracts.labelled_recordings reads and validates one.
"""

import posixpath

LABELS_JSON = 'labels.json'
AUDIO_DIR = 'audio'
# The label's fields: family and source are required, NSynth's names.
FAMILY = 'family'
SOURCE = 'source'
INSTRUMENT_STR = 'instrument_str'   # default: the file name without suffix
LIBRARY = 'library'                 # the demo's sample library, if any


def audio_path(directory: str, name: str) -> str:
  return posixpath.join(directory, AUDIO_DIR, name)


def label(family: str, source: str, instrument_str: str,
          library: str = '') -> dict[str, str]:
  """One recording's entry of labels.json."""
  entry = {FAMILY: family, SOURCE: source, INSTRUMENT_STR: instrument_str}
  if library:
    entry[LIBRARY] = library
  return entry
