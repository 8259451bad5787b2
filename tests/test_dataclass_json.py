"""The one reader of settings and records in JSON: strict, typed, naming the
field, never quoting a value."""

import dataclasses
import json

import pytest

from nsynth_common import dataclass_json
from nsynth_common.dataclass_json import FieldError


@dataclasses.dataclass(frozen=True)
class Inner:
  rate_hz: int
  gain: float = 1.0


@dataclasses.dataclass(frozen=True)
class Outer:
  name: str
  inner: Inner
  names: tuple[str, ...] = ()
  pair: tuple[float, float] = (0.0, 1.0)
  counts: dict[str, int] = dataclasses.field(default_factory=dict)
  limit: float | None = None
  nested: Inner | None = None
  on: bool = False


FULL = Outer('a', Inner(16000, 0.5), ('x', 'y'), (2.0, 3.0), {'k': 1}, 4.5,
             Inner(8000), True)


def test_a_dataclass_survives_json_equal_to_itself():
  text = json.dumps(dataclass_json.to_json(FULL))
  assert dataclass_json.from_json(Outer, json.loads(text)) == FULL
  assert json.loads(text)['names'] == ['x', 'y']


def test_defaults_fill_what_is_left_out():
  assert dataclass_json.from_json(
      Outer, {'name': 'a', 'inner': {'rate_hz': 1}}) == Outer('a', Inner(1))


def test_an_int_is_a_number_where_a_float_is_asked():
  read = dataclass_json.from_json(Inner, {'rate_hz': 1, 'gain': 2})
  assert read.gain == 2.0 and isinstance(read.gain, float)


def _with(**changes):
  data = dataclass_json.to_json(FULL)
  for path, value in changes.items():
    *parents, name = path.split('__')
    at = data
    for parent in parents:
      at = at[parent]
    if value is KeyError:
      del at[name]
    else:
      at[name] = value
  return data


@pytest.mark.parametrize('data,message', [
    (_with(extra=1), 'doc: 1 unknown field (extra)'),
    (_with(inner__extra=1, inner__more=2),
     'doc.inner: 2 unknown fields (extra, more)'),
    (_with(**{'bad name\x1b': 1}), 'doc: 1 unknown field'),
    (_with(name=KeyError), 'doc.name is missing'),
    (_with(inner__rate_hz=KeyError), 'doc.inner.rate_hz is missing'),
    (_with(inner__rate_hz='16k'), 'doc.inner.rate_hz is not an integer'),
    (_with(inner__rate_hz=16000.5), 'doc.inner.rate_hz is not an integer'),
    (_with(inner__rate_hz=True), 'doc.inner.rate_hz is not an integer'),
    (_with(inner__gain='loud'), 'doc.inner.gain is not a number'),
    (_with(on=1), 'doc.on is not true or false'),
    (_with(names='xy'), 'doc.names is not a list'),
    (_with(names=['x', 3]), 'doc.names[1] is not a string'),
    (_with(pair=[1.0]), 'doc.pair is not a list of 2'),
    (_with(counts={'k': 'one'}), 'doc.counts.k is not an integer'),
    (_with(limit='none'), 'doc.limit is not a number'),
    (_with(nested=[]), 'doc.nested is not an object'),
    (_with(inner=None), 'doc.inner is not an object'),
    ([1, 2], 'doc is not an object'),
])
def test_what_the_class_does_not_say_is_refused_naming_the_field(data,
                                                                 message):
  with pytest.raises(FieldError) as error:
    dataclass_json.from_json(Outer, data, 'doc')
  assert str(error.value) == message


def test_a_message_never_quotes_a_value():
  with pytest.raises(FieldError) as error:
    dataclass_json.from_json(Outer, _with(name=['\x1b[2Jsecret']), 'doc')
  assert 'secret' not in str(error.value)


def test_null_is_read_only_where_the_annotation_allows_none():
  assert dataclass_json.from_json(Outer, _with(limit=None, nested=None)
                                  ).limit is None
  with pytest.raises(FieldError, match='doc.name is not a string'):
    dataclass_json.from_json(Outer, _with(name=None), 'doc')
