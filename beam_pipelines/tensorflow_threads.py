"""One TensorFlow inter-op thread for the Beam job's featurising.

TensorFlow's oneDNN kernels cache their primitives (reordered weights,
scratchpads) per thread that runs them, for every shape they meet. The
job's workers run one op at a time, its cores busy inside each op, so the
default inter-op pool (a thread a core and more) only multiplied those
caches: at 20,000 notes the job held 6.9-9.3 GB with it and 2.2 GB with one
thread, at the same rate (BUILD_NOTES.md, "Hear faster").

The count is fixed when TensorFlow starts its runtime, which the launcher
does before its first worker: the launcher sets it through the environment
(which worker processes inherit), and a worker on another machine sets it
itself when nothing has.
"""

import logging
import os

# Read by TensorFlow when its runtime starts.
INTER_OP_THREADS_VARIABLE = 'TF_NUM_INTEROP_THREADS'


def for_this_process() -> None:
  """The launcher's choice, before TensorFlow starts: one inter-op thread,
  unless the user's environment says otherwise."""
  os.environ.setdefault(INTER_OP_THREADS_VARIABLE, '1')


def for_worker(tf) -> None:
  """A worker's setup: one inter-op thread, where neither the launcher nor
  the user chose."""
  if INTER_OP_THREADS_VARIABLE in os.environ:
    return
  try:
    tf.config.threading.set_inter_op_parallelism_threads(1)
  except RuntimeError:  # Started before this worker: it keeps its pool.
    logging.warning('TensorFlow started before the Beam workers; its '
                    'inter-op threads stay as they are')
