"""Frozen dataclasses to JSON and back: asdict out, one strict reader in.

`to_json` is `dataclasses.asdict` with tuples as lists, which is what
`json.dumps` writes and `json.loads` gives back, so a value survives the
trip equal to itself. `from_json` builds a dataclass from parsed JSON by its
annotations, and refuses what the class does not say, naming the field:

* a field the class does not have (never dropped without a word): a typo in
  a hand-written file, or a file of another version;
* a required field (one without a default) that is missing;
* a value of another type: an int for an int (never a bool), a number for a
  float, a list for a tuple or list (each item checked), an object for a
  dict or a nested dataclass, null only where the annotation allows None.

Messages name fields, never their values, since a document may come from a
server or a hostile file; the names of unknown fields appear only when they
are plain identifiers. Checks of meaning (positive, finite, within bounds)
belong to each class or its reader: this module knows only shapes and types.
"""

import dataclasses
import types
import typing
from collections.abc import Iterable
from typing import Any
from typing import TypeVar

T = TypeVar('T')


class FieldError(ValueError):
  """JSON that is not the dataclass's; the message names the field."""


def to_json(instance) -> dict:
  """The dataclass as JSON would hold it: nested dataclasses as objects,
  tuples as lists."""
  return _plain(dataclasses.asdict(instance))


def _plain(value):
  if isinstance(value, dict):
    return {key: _plain(item) for key, item in value.items()}
  if isinstance(value, (list, tuple)):
    return [_plain(item) for item in value]
  return value


def from_json(cls: type[T], data: Any, where: str = '') -> T:
  """`cls` from parsed JSON, every field checked against its annotation.

  Args:
    where: names the document in messages (a path, `feature_params`, ...);
      nested fields are named after it, `where.field[2].other`.

  Raises:
    FieldError: an unknown field, a missing required one, or a value of
      another type; the message names it, in one line.
  """
  return _dataclass(cls, data, where or cls.__name__)


def value_of(hint, value: Any, where: str):
  """`value` checked against the annotation `hint` (`int | None`,
  `tuple[str, ...]`, a dataclass, ...), for readers of a format that
  differs from its dataclass.

  Raises:
    FieldError: naming `where`.
  """
  return _value(hint, value, where)


def refuse_unknown(data: dict, known: Iterable[str], where: str) -> None:
  """For readers of a format that differs from its dataclass.

  Raises:
    FieldError: `data` has a field that is not `known`.
  """
  unknown = sorted(str(name) for name in set(data) - set(known))
  if not unknown:
    return
  named = all(name.isidentifier() and len(name) <= 40 for name in unknown)
  raise FieldError(f'{where}: {len(unknown)} unknown field'
                   f'{"s" if len(unknown) > 1 else ""}'
                   + (f' ({", ".join(unknown)})' if named else ''))


def _dataclass(cls, data, path: str):
  if not isinstance(data, dict):
    raise FieldError(f'{path} is not an object')
  fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
  refuse_unknown(data, fields, path)
  hints = typing.get_type_hints(cls)
  values = {}
  for name, field in fields.items():
    if name in data:
      values[name] = _value(hints[name], data[name], f'{path}.{name}')
    elif (field.default is dataclasses.MISSING and
          field.default_factory is dataclasses.MISSING):
      raise FieldError(f'{path}.{name} is missing')
  return cls(**values)


def _value(hint, value, path: str):
  """`value` as `hint` says, or FieldError."""
  origin, args = typing.get_origin(hint), typing.get_args(hint)
  if origin in (typing.Union, types.UnionType):
    if value is None and type(None) in args:
      return None
    kinds = [a for a in args if a is not type(None)]
    if len(kinds) != 1:
      raise TypeError(f'{path}: cannot read a union of {kinds}')
    return _value(kinds[0], value, path)
  if dataclasses.is_dataclass(hint):
    return _dataclass(hint, value, path)
  if hint is Any:
    return value
  if not _is_a(hint, origin, value):
    raise FieldError(f'{path} is not {_described(hint)}')
  if hint is float:
    return float(value)
  if origin is tuple and args[-1:] != (Ellipsis,):
    if len(value) != len(args):
      raise FieldError(f'{path} is not {_described(hint)}')
    return tuple(_value(a, v, f'{path}[{i}]')
                 for i, (a, v) in enumerate(zip(args, value)))
  if origin in (tuple, list):
    items = [_value(args[0], v, f'{path}[{i}]') for i, v in enumerate(value)]
    return tuple(items) if origin is tuple else items
  if origin is dict:
    return {k: _value(args[1], v, f'{path}.{k}') for k, v in value.items()}
  return value


def _is_a(hint, origin, value) -> bool:
  if hint is bool:
    return isinstance(value, bool)
  if hint is int:
    return isinstance(value, int) and not isinstance(value, bool)
  if hint is float:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
  if hint is str:
    return isinstance(value, str)
  if (origin or hint) in (tuple, list):
    return isinstance(value, list)
  if (origin or hint) is dict:
    return isinstance(value, dict) and all(isinstance(k, str) for k in value)
  raise TypeError(f'cannot read a field of type {hint}')


def _described(hint) -> str:
  origin, args = typing.get_origin(hint), typing.get_args(hint)
  if origin is tuple and args[-1:] != (Ellipsis,):
    return f'a list of {len(args)}'
  return {bool: 'true or false', int: 'an integer', float: 'a number',
          str: 'a string', tuple: 'a list', list: 'a list',
          dict: 'an object'}[origin or hint]
