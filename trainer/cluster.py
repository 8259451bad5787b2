"""Where this process trains: the tf.distribute strategy and its place in
the cluster.

With --distribution=multi_worker every worker trains, but only the chief
writes the job directory, as tf.distribute prescribes: the other workers
write their checkpoints and logs to scratch directories of their own.
"""

import dataclasses
import hashlib
import logging
import os
import posixpath

import keras
import numpy as np
import tensorflow as tf

from trainer.train_config import ConfigError


def distribution_strategy(name: str) -> tf.distribute.Strategy:
  """The tf.distribute strategy for --distribution.

  multi_worker reads the cluster from the standard TF_CONFIG variable.
  """
  if name == 'default':
    return tf.distribute.get_strategy()
  if name == 'mirrored':
    return tf.distribute.MirroredStrategy()
  if name == 'multi_worker':
    if 'TF_CONFIG' not in os.environ:
      raise ConfigError('--distribution=multi_worker needs TF_CONFIG to '
                        'describe the cluster')
    return tf.distribute.MultiWorkerMirroredStrategy()
  raise ConfigError(f'Unknown --distribution {name!r}')


@dataclasses.dataclass(frozen=True)
class Worker:
  """This process's place in the cluster."""
  index: int = 0
  count: int = 1
  is_chief: bool = True


def worker_of(strategy: tf.distribute.Strategy) -> Worker:
  """Chief: the 'chief' task, or worker 0 of a cluster without one."""
  resolver = getattr(strategy, 'cluster_resolver', None)
  if resolver is None or not resolver.cluster_spec().as_dict():
    return Worker()
  jobs = resolver.cluster_spec().as_dict()
  count = sum(len(jobs.get(job, [])) for job in ('chief', 'worker'))
  task_type, task_id = resolver.task_type, resolver.task_id or 0
  is_chief = task_type == 'chief' or (task_type == 'worker' and task_id == 0
                                      and 'chief' not in jobs)
  index = task_id + (1 if 'chief' in jobs and task_type == 'worker' else 0)
  return Worker(index=index, count=count, is_chief=is_chief)


def input_options(worker: Worker) -> tf.data.Options:
  """Sharding chosen on purpose: every worker reads every shard and keeps
  its share of each global batch (DATA). It works for any number of shards,
  and every worker gets the same number of steps; FILE sharding needs at
  least one shard per worker and gives uneven steps when shards differ."""
  options = tf.data.Options()
  options.experimental_distribute.auto_shard_policy = (
      tf.data.experimental.AutoShardPolicy.DATA)
  if worker.count > 1:
    logging.info('Input sharding: DATA over %d workers (each reads every '
                 'shard and keeps its share of each batch)', worker.count)
  return options


def weights_fingerprint(model: keras.Model) -> str:
  """A short digest of every weight: equal models, equal fingerprints."""
  digest = hashlib.sha256()
  for weight in model.weights:
    digest.update(np.asarray(weight.numpy()).tobytes())
  return digest.hexdigest()[:16]


def copy_tree(source: str, destination: str) -> None:
  """A directory tree, local or remote, copied file by file."""
  for directory, _, names in tf.io.gfile.walk(source):
    target = posixpath.join(destination, os.path.relpath(directory, source))
    tf.io.gfile.makedirs(target)
    for name in names:
      tf.io.gfile.copy(posixpath.join(directory, name),
                       posixpath.join(target, name), overwrite=True)
