r"""An export's serving_default in a process of its own, for side-by-side runs.

Usage (what benchmarks.serving_latency starts; not a command for people):
  python -m benchmarks.signature_worker EXPORT_DIR PRECISION

Loads the export and calls its serving_default in PRECISION (float32, or
its bfloat16 twin), in a process of its own so that two exports measured
side by side share no state (TensorFlow's caches, its thread pools), then
answers one JSON request per line on stdin with one JSON line on stdout:
  {"latencies": [WAV paths]}     -> seconds of each call on one clip
  {"probabilities": [WAV paths]} -> [[per class], ...], in batches of 64
Clips are decoded as the export's contract says. `Worker` is the parent's
side: start two, and alternate rounds between them, so that both see the
same load.
"""

import json
import subprocess
import sys
import time
from collections.abc import Sequence

import numpy as np

_BATCH = 64


class Worker:
  """The parent's handle on one worker process."""

  def __init__(self, export_dir: str, precision: str,
               python: str = sys.executable, env: dict | None = None,
               cwd: str | None = None):
    self._process = subprocess.Popen(
        [python, '-m', 'benchmarks.signature_worker', export_dir, precision],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
        cwd=cwd)

  def ask(self, request: dict):
    """The worker's answer to one request.

    Raises:
      RuntimeError: the worker died (its stderr went to ours).
    """
    self._process.stdin.write(json.dumps(request) + '\n')
    self._process.stdin.flush()
    line = self._process.stdout.readline()
    if not line:
      raise RuntimeError(f'the signature worker exited with status '
                         f'{self._process.wait()}')
    return json.loads(line)

  def close(self) -> None:
    self._process.stdin.close()
    self._process.wait()


def _answer(serve, params, request: dict):
  import tensorflow as tf

  from nsynth_contracts import audio_decoding
  from serving import signatures

  def clips(paths: Sequence[str]) -> np.ndarray:
    return np.stack([audio_decoding.decode_clip(open(p, 'rb').read(), params)
                     for p in paths])

  if 'latencies' in request:
    seconds = []
    for clip in clips(request['latencies']):
      one = tf.constant(clip[np.newaxis])
      start = time.perf_counter()
      serve(audio=one)[signatures.PROBABILITIES].numpy()
      seconds.append(time.perf_counter() - start)
    return seconds
  paths = request['probabilities']
  return [row.tolist() for start in range(0, len(paths), _BATCH)
          for row in serve(audio=tf.constant(clips(
              paths[start:start + _BATCH])))[signatures.PROBABILITIES].numpy()]


def _main(export_dir: str, resolved_precision: str) -> None:
  from nsynth_common import cli
  cli.import_tensorflow_quietly()
  import tensorflow as tf

  from serving import signatures
  loaded = tf.saved_model.load(export_dir)
  params = signatures.read_contract(loaded, export_dir).feature_params
  serve = loaded.signatures[signatures.in_precision(
      signatures.AUDIO_SIGNATURE, resolved_precision)]
  for line in sys.stdin:
    print(json.dumps(_answer(serve, params, json.loads(line))), flush=True)


if __name__ == '__main__':
  _main(*sys.argv[1:3])
