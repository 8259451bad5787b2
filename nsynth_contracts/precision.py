"""The arithmetic a process runs the representation networks in.

`float32` everywhere, or `bfloat16` where the CPU multiplies it natively
(AVX-512 BF16 or AMX): the network's convolutions and matrix products take
bfloat16 inputs and accumulate in float32, about 1.5-2x faster per clip,
within a stated tolerance of float32 (tests/test_precision.py).

It is chosen where a graph runs, never stored in one: an exported
SavedModel stays float32, so it loads and runs on any CPU, and what runs it
turns on TensorFlow's own rewrite, `auto_mixed_precision_onednn_bfloat16`,
which converts the graph when it is optimised: a session of its own for the
Beam job's workers (`session_function`), the whole process for
nsynth-predict (`use`), the platform configuration in the README for TF
Serving. On a CPU without bfloat16 that rewrite makes oneDNN fail ("could
not create a primitive descriptor"), so `auto` asks the CPU first, as
oneDNN would, and honours the two environment variables that restrict
oneDNN (`ONEDNN_MAX_CPU_ISA`, `TF_ENABLE_ONEDNN_OPTS`).

    run = precision.session_function(model, clip_samples,
                                     precision.resolve('auto'))
    vectors = run(clips)                # NumPy in, NumPy out

Importing this module changes nothing.
"""

import os

FLOAT32 = 'float32'
BFLOAT16 = 'bfloat16'
AUTO = 'auto'
CHOICES = (AUTO, FLOAT32, BFLOAT16)

# The CPU flags (as Linux's /proc/cpuinfo names them) with which oneDNN
# computes bfloat16 natively: AVX-512 BF16 (Cooper Lake, Zen 4 and later)
# or AMX (Sapphire Rapids and later).
BFLOAT16_CPU_FLAGS = frozenset({'avx512_bf16', 'amx_bf16'})
# ONEDNN_MAX_CPU_ISA values (oneDNN's names, upper case) that stop below
# the instructions bfloat16 needs; anything else (ALL, DEFAULT,
# AVX512_CORE_BF16, AVX512_CORE_AMX, AVX10_*) leaves them on.
_ISAS_WITHOUT_BFLOAT16 = frozenset({
    'SSE41', 'AVX', 'AVX2', 'AVX2_VNNI', 'AVX2_VNNI_2', 'AVX512_CORE',
    'AVX512_CORE_VNNI'})
_CPUINFO = '/proc/cpuinfo'


class PrecisionError(ValueError):
  """A precision this machine cannot run, or no precision at all."""


def cpu_flags(cpuinfo_path: str = _CPUINFO) -> frozenset[str]:
  """The first CPU's feature flags; empty where they cannot be read (not
  Linux, or a sandbox hiding /proc), which counts as no bfloat16."""
  try:
    with open(cpuinfo_path, encoding='utf-8', errors='replace') as f:
      for line in f:
        name, _, value = line.partition(':')
        if name.strip() == 'flags':
          return frozenset(value.split())
  except OSError:
    pass
  return frozenset()


def bfloat16_unavailable_reason(
    environ: dict | None = None,
    flags: frozenset[str] | None = None) -> str | None:
  """Why this process cannot compute in bfloat16, or None if it can."""
  environ = os.environ if environ is None else environ
  if environ.get('TF_ENABLE_ONEDNN_OPTS', '').strip().lower() in (
      '0', 'false'):
    return 'TF_ENABLE_ONEDNN_OPTS turns oneDNN off'
  isa = environ.get('ONEDNN_MAX_CPU_ISA', '').strip().upper()
  if isa in _ISAS_WITHOUT_BFLOAT16:
    return f'ONEDNN_MAX_CPU_ISA={isa} rules bfloat16 out'
  flags = cpu_flags() if flags is None else flags
  if not BFLOAT16_CPU_FLAGS & flags:
    return 'this CPU has neither AVX-512 BF16 nor AMX'
  return None


def checked_choice(requested: str) -> str:
  """Raises: PrecisionError: `requested` is not one of CHOICES."""
  if requested not in CHOICES:
    raise PrecisionError(f'precision {requested!r} is not one of {CHOICES}')
  return requested


def resolve(requested: str, environ: dict | None = None,
            flags: frozenset[str] | None = None) -> str:
  """The precision to run: `auto` is bfloat16 where this CPU has it.

  Raises:
    PrecisionError: not one of CHOICES, or bfloat16 asked for where it
      cannot run (the message says why).
  """
  if checked_choice(requested) == FLOAT32:
    return FLOAT32
  reason = bfloat16_unavailable_reason(environ, flags)
  if reason is None:
    return BFLOAT16
  if requested == BFLOAT16:
    raise PrecisionError(f'bfloat16 cannot run here: {reason} (use auto or '
                         f'float32)')
  return FLOAT32


def _checked_resolved(resolved: str) -> str:
  if resolved not in (FLOAT32, BFLOAT16):
    raise PrecisionError(f'a resolved precision is {FLOAT32} or {BFLOAT16}, '
                         f'not {resolved!r}')
  return resolved


def use(resolved: str) -> None:
  """Makes TensorFlow run every graph of this process in `resolved` (what
  `resolve` gave) from now on, functions traced before included: for a
  command's main, never for a library, whose caller's graphs it would
  change. Matrix products and convolutions outside the networks are
  rewritten too."""
  import tensorflow as tf
  tf.config.optimizer.set_experimental_options(
      {'auto_mixed_precision_onednn_bfloat16':
       _checked_resolved(resolved) == BFLOAT16})


def session_function(model, clip_samples: int, resolved: str):
  """`model` as a function of NumPy clips, run in `resolved` in a session of
  its own, as TF Serving runs an export: nothing else in the process
  changes.

  Its weights become constants of that session's graph, which also lets
  oneDNN keep them in its own layout between calls.

  Args:
    model: a Keras model of float32 [batch, clip_samples] clips.
    clip_samples: the clips' length.
    resolved: what `resolve` gave.

  Returns:
    A thread-safe function: float32 [batch, clip_samples] -> np.ndarray.
  """
  import tensorflow as tf
  from tensorflow.core.protobuf import rewriter_config_pb2
  from tensorflow.python.framework import convert_to_constants
  concrete = tf.function(lambda clips: model(clips, training=False)
                         ).get_concrete_function(
                             tf.TensorSpec([None, clip_samples], tf.float32))
  frozen = convert_to_constants.convert_variables_to_constants_v2(concrete)
  graph = tf.Graph()
  with graph.as_default():
    tf.import_graph_def(frozen.graph.as_graph_def(), name='')
  config = tf.compat.v1.ConfigProto()
  if _checked_resolved(resolved) == BFLOAT16:
    rewrites = config.graph_options.rewrite_options
    rewrites.auto_mixed_precision_onednn_bfloat16 = (
        rewriter_config_pb2.RewriterConfig.ON)
  session = tf.compat.v1.Session(graph=graph, config=config)
  fed, fetched = frozen.inputs[0].name, frozen.outputs[0].name
  return lambda clips: session.run(fetched, {fed: clips})
