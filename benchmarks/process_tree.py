"""A command's wall time and the peak RSS of its whole process tree.

Peak RSS here is the largest sum, over the command and every process it
started, of their resident memory at one instant, sampled every 0.2 s with
psutil. getrusage(RUSAGE_CHILDREN).ru_maxrss is not that: it is the largest
of any single child, so a job whose workers run side by side would show one
worker's memory. Pages that processes share are counted once per process,
so for forked workers the sum is an upper bound.
"""

import os
import subprocess
import sys
import time
from collections.abc import Sequence

import psutil

SAMPLE_SECONDS = 0.2


class CommandFailedError(Exception):
  """A measured command exited with an error; the message names its log."""


def tree_rss(process) -> int:
  """Bytes of RSS of a psutil.Process and all its descendants, now."""
  try:
    members = [process] + process.children(recursive=True)
  except psutil.Error:
    return 0
  total = 0
  for member in members:
    try:
      total += member.memory_info().rss
    except psutil.Error:  # ended (or a zombie) since it was listed
      pass
  return total


def kill_tree(pid: int) -> None:
  """Kills a process and every process it started (those first)."""
  try:
    root = psutil.Process(pid)
    members = root.children(recursive=True) + [root]
  except psutil.Error:
    return
  for member in members:
    try:
      member.kill()
    except psutil.Error:
      pass


def run_measured(argv: Sequence[str], log_path: str) -> tuple[float, int]:
  """Runs a command, its output to log_path: (wall seconds, peak RSS of its
  process tree in bytes).

  Raises:
    CommandFailedError: the command failed; the end of its log is printed
      to stderr first.
  """
  peak = 0
  with open(log_path, 'wb') as log:
    start = time.perf_counter()
    process = subprocess.Popen(list(argv), stdout=log,
                               stderr=subprocess.STDOUT)
    try:
      root = psutil.Process(process.pid)
      while True:
        peak = max(peak, tree_rss(root))
        try:
          process.wait(timeout=SAMPLE_SECONDS)
          break
        except subprocess.TimeoutExpired:
          pass
    except BaseException:
      # Interrupted (Ctrl-C): the command and its workers must not outlive
      # us, writing into a directory the caller is about to remove.
      kill_tree(process.pid)
      process.wait()
      raise
    seconds = time.perf_counter() - start
  if process.returncode:
    with open(log_path, errors='replace') as f:
      print(''.join(f.readlines()[-25:]), file=sys.stderr)
    raise CommandFailedError(
        f'{os.path.basename(argv[0])} exited with status '
        f'{process.returncode}; the end of its output is above (all of it: '
        f'{log_path})')
  return seconds, peak
