"""The arithmetic a process runs the representation networks in.

`float32` everywhere, or `bfloat16` where the CPU multiplies it natively
(AVX-512 BF16 or AMX): a network built for bfloat16 multiplies in it where
most of its work is and where that keeps its answers (each kind says where:
Representation.build_model), accumulating in float32, everything else
float32; faster per clip, within a stated tolerance of float32
(tests/test_precision.py).

A bfloat16 graph fails on a CPU without those instructions ("could not
create a primitive descriptor"), so nothing assumes it: `resolve('auto')`
asks the CPU, as oneDNN would, and honours the two environment variables
that restrict oneDNN (`ONEDNN_MAX_CPU_ISA`, `TF_ENABLE_ONEDNN_OPTS`). Each
place that runs a network resolves for itself: every Beam worker for its own
CPU (the manifest records what they used), nsynth-predict for its machine.
An export serves float32 signatures, which run anywhere, beside bfloat16
ones for the CPUs that have it.

Importing this module changes nothing, and no function here changes any
process-wide state.
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
