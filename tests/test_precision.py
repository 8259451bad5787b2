"""bfloat16 where the CPU has it, detected and never assumed; float32 else.

The arithmetic a representation network runs in is chosen where it runs
(nsynth_contracts.precision). These tests pin how it is chosen, where a
network computes in bfloat16, and how far its answers are from float32's.
"""

import glob
import os

import numpy as np
import pytest
import soundfile
import tensorflow as tf

from nsynth_contracts import musicnn_representation
from nsynth_contracts import precision

BF16_CPU = frozenset({'fpu', 'avx2', 'avx512f', 'avx512_bf16'})
AMX_CPU = frozenset({'fpu', 'avx2', 'avx512f', 'amx_bf16', 'amx_tile'})
AVX2_CPU = frozenset({'fpu', 'avx2', 'fma'})
HERE_BF16 = precision.bfloat16_unavailable_reason() is None
needs_bf16 = pytest.mark.skipif(
    not HERE_BF16, reason='this CPU cannot run bfloat16: '
    f'{precision.bfloat16_unavailable_reason()}')
# The representation in bfloat16 against float32 on real notes: every value
# within this fraction of the clip's largest (measured: 0.4-1.4%; bfloat16
# keeps 8 bits of mantissa and a timbral filter sums 266-469 products), and
# the clips' vectors correlated above this (measured: 0.99997 and more).
BF16_VALUE_TOLERANCE = 0.03
BF16_MIN_CORRELATION = 0.9999


@pytest.mark.parametrize('requested,environ,flags,expected', [
    ('auto', {}, BF16_CPU, precision.BFLOAT16),
    ('auto', {}, AMX_CPU, precision.BFLOAT16),
    ('auto', {}, AVX2_CPU, precision.FLOAT32),
    ('auto', {}, frozenset(), precision.FLOAT32),   # flags unreadable
    ('auto', {'ONEDNN_MAX_CPU_ISA': 'AVX2'}, BF16_CPU, precision.FLOAT32),
    ('auto', {'ONEDNN_MAX_CPU_ISA': 'avx512_core'}, AMX_CPU,
     precision.FLOAT32),
    ('auto', {'ONEDNN_MAX_CPU_ISA': 'AVX512_CORE_BF16'}, BF16_CPU,
     precision.BFLOAT16),
    ('auto', {'ONEDNN_MAX_CPU_ISA': 'ALL'}, AMX_CPU, precision.BFLOAT16),
    ('auto', {'TF_ENABLE_ONEDNN_OPTS': '0'}, AMX_CPU, precision.FLOAT32),
    ('float32', {}, AMX_CPU, precision.FLOAT32),
    ('bfloat16', {}, BF16_CPU, precision.BFLOAT16),
])
def test_auto_is_bfloat16_exactly_where_onednn_can_run_it(
    requested, environ, flags, expected):
  assert precision.resolve(requested, environ, flags) == expected


@pytest.mark.parametrize('environ,flags,reason', [
    ({}, AVX2_CPU, 'this CPU has neither AVX-512 BF16 nor AMX'),
    ({'ONEDNN_MAX_CPU_ISA': 'AVX2'}, AMX_CPU,
     'ONEDNN_MAX_CPU_ISA=AVX2 rules bfloat16 out'),
    ({'TF_ENABLE_ONEDNN_OPTS': 'false'}, AMX_CPU,
     'TF_ENABLE_ONEDNN_OPTS turns oneDNN off'),
])
def test_bfloat16_asked_for_where_it_cannot_run_says_why(environ, flags,
                                                         reason):
  with pytest.raises(precision.PrecisionError) as raised:
    precision.resolve(precision.BFLOAT16, environ, flags)
  assert str(raised.value) == (f'bfloat16 cannot run here: {reason} (use '
                               f'auto or float32)')


def test_an_unknown_precision_is_named():
  with pytest.raises(precision.PrecisionError, match="'float16' is not one"):
    precision.resolve('float16')


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
  cpuinfo = tmp_path / 'cpuinfo'
  cpuinfo.write_text('processor\t: 0\nvendor_id\t: AuthenticAMD\n'
                     'flags\t\t: fpu avx2 avx512_bf16 avx512_vnni\n\n'
                     'processor\t: 1\nflags\t\t: fpu\n')
  assert precision.cpu_flags(str(cpuinfo)) == {'fpu', 'avx2', 'avx512_bf16',
                                               'avx512_vnni'}
  assert precision.cpu_flags(str(tmp_path / 'missing')) == frozenset()


def _clips() -> np.ndarray:
  """Real notes (the musicnn reference's) and seeded noise, [5, 64000]."""
  paths = sorted(glob.glob(os.path.join(os.path.dirname(__file__), 'data',
                                        'musicnn', '*.wav')))
  clips = [soundfile.read(p, dtype='float32')[0] for p in paths]
  noise = np.random.default_rng(3).standard_normal(64000) * 0.1
  return np.stack([*clips, noise]).astype(np.float32)


@pytest.fixture(scope='module')
def weights():
  return musicnn_representation.DEFAULT.read_weights()


def _embeddings(weights, arithmetic: str) -> np.ndarray:
  model = musicnn_representation.DEFAULT.build_model(weights, arithmetic)
  return model(_clips()).numpy()


def test_float32_is_the_network_as_musicnn_computes_it(weights):
  """The default precision builds the very network the parity tests pin."""
  from nsynth_contracts import musicnn_network
  reference = musicnn_network.build_embedding_model(
      weights, musicnn_representation.DEFAULT)
  np.testing.assert_array_equal(_embeddings(weights, precision.FLOAT32),
                                reference(_clips()).numpy())


@needs_bf16
def test_bfloat16_stays_within_its_tolerance_of_float32(weights):
  exact = _embeddings(weights, precision.FLOAT32)
  fast = _embeddings(weights, precision.BFLOAT16)
  assert not np.array_equal(fast, exact)   # it did run in bfloat16
  for got, expected in zip(fast, exact):
    scale = np.abs(expected).max()
    assert np.abs(got - expected).max() <= BF16_VALUE_TOLERANCE * scale
    assert np.corrcoef(got, expected)[0, 1] >= BF16_MIN_CORRELATION


def test_a_graph_in_bfloat16_holds_bfloat16_only_where_asked(weights):
  """Tracing needs no bfloat16 CPU; running does, which is why the choice
  is resolved for each machine and never stored as the only graph."""
  model = musicnn_representation.DEFAULT.build_model(weights,
                                                     precision.BFLOAT16)
  graph = tf.function(model).get_concrete_function(
      tf.TensorSpec([None, 64000], tf.float32)).graph
  convolutions = {op.name.split('/')[-2]: op.get_attr('T')
                  for op in graph.get_operations() if op.type == 'Conv2D'}
  timbral = {k: v for k, v in convolutions.items() if 'timbral' in k}
  assert timbral and set(timbral.values()) == {tf.bfloat16}
  assert {v for k, v in convolutions.items() if k not in timbral} == {
      tf.float32}
