"""Which kinds of pretrained representation exist, and the default ones.

The registry of nsynth_contracts.representation's interface: adding a kind
is one module implementing `Representation` and one entry in `_BUILT_IN`
(or, for a kind that lives outside this package, one `register` call before
the job, the trainer or the export runs). Free of TensorFlow, as the kinds'
parameter halves are.
"""

from nsynth_contracts import musicnn_representation
from nsynth_contracts.representation import Representation
from nsynth_contracts.representation import RepresentationError

_BUILT_IN: tuple[type[Representation], ...] = (
    musicnn_representation.MusicnnRepresentation,
)
_KINDS: dict[str, type[Representation]] = {
    kind.kind: kind for kind in _BUILT_IN}

# What every record holds beside its MFCCs unless the Beam job is told
# otherwise (nsynth-tfrecords --embedding).
DEFAULT: tuple[Representation, ...] = (musicnn_representation.DEFAULT,)


def register(kind: type[Representation]) -> type[Representation]:
  """Makes `kind` known to parse and from_json (usable as a decorator).

  Raises:
    RepresentationError: another class already has its kind's name.
  """
  known = _KINDS.get(kind.kind)
  if known is not None and known is not kind:
    raise RepresentationError(f'representation kind {kind.kind!r} is already '
                              f'{known.__qualname__}')
  _KINDS[kind.kind] = kind
  return kind


def unregister(kind: type[Representation]) -> None:
  """Forgets a kind `register` added (built-in kinds stay)."""
  if kind not in _BUILT_IN and _KINDS.get(kind.kind) is kind:
    del _KINDS[kind.kind]


def kinds() -> tuple[type[Representation], ...]:
  return tuple(_KINDS.values())


def from_json(data: dict) -> Representation:
  """Raises: RepresentationError: an unknown kind or bad parameters."""
  if not isinstance(data, dict) or not isinstance(data.get('params'), dict):
    raise RepresentationError('a representation is {"kind", "params"}')
  kind = data.get('kind')
  if kind not in _KINDS:
    raise RepresentationError(
        f'representation kind {kind!r} is not one of {sorted(_KINDS)}')
  return _KINDS[kind].from_params(data['params'])


def parse(text: str) -> Representation:
  """The representation a command-line item names, of whichever kind.

  Raises:
    RepresentationError: no kind knows the item.
  """
  for kind in _KINDS.values():
    parsed = kind.parse(text.strip())
    if parsed is not None:
      return parsed
  raise RepresentationError(
      f'{text!r} names no representation ({"; ".join(examples())})')


def examples() -> list[str]:
  """What each kind's command-line items look like, for help texts."""
  return [kind.usage for kind in _KINDS.values()]


def summaries() -> list[str]:
  """What each kind is and where its weights come from, for help texts."""
  return [kind.summary for kind in _KINDS.values()]
