"""Keras 3's model.fit under MultiWorkerMirroredStrategy, made to work.

Keras 3 (3.15.1, the newest release, and every 3.x before it) cannot run
`fit` with more than one worker (keras-team/keras#20585), for two reasons:

1. Before the first step, `fit` builds the model from one batch that it
   averages across workers with `strategy.reduce`, which the multi-worker
   strategy cannot do eagerly on per-replica values: "Attempt to convert a
   value (PerReplica ...) to a Tensor". Building needs only the batch's
   shapes, which the local replica's batch has.
2. After each step, the logs (scalars) are averaged across workers with
   `strategy.reduce('MEAN', value, axis=0)`: "Invalid reduction dimension 0
   for input with 0 dimensions". `axis=None` is the reduction meant, and it
   keeps every worker's logs equal, so that callbacks decide alike.

A third thing is no bug but a default that breaks synchronous training:
BatchNormalization updates its moving statistics from each worker's own
batches, so the workers' models drift apart (measured: 16 of 44 weights
differed after one epoch). With `synchronized=True` the batch statistics are
averaged across workers at each step and every worker keeps the same model.

`enable(model, strategy)` applies all three, only for a multi-worker
strategy. tests/test_trainer.py trains two real workers, so a Keras release
that changes these internals fails there, loudly.
"""

import keras
import tensorflow as tf
from keras.src import tree
from keras.src.backend.tensorflow import trainer as keras_tf_trainer

_original_reduce_per_replica = keras_tf_trainer.reduce_per_replica


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
  return keras_tf_trainer._collective_all_reduce_multi_worker(strategy)


def _reduce_per_replica(values, strategy, reduction):
  if reduction in ('auto', 'mean') and is_multi_worker(strategy):
    return tree.map_structure(
        lambda v: strategy.reduce('MEAN', v, axis=None), values)
  return _original_reduce_per_replica(values, strategy, reduction)


def enable(model, strategy: tf.distribute.Strategy) -> None:
  """Lets `model.fit`/`evaluate` run under a multi-worker strategy."""
  if not is_multi_worker(strategy):
    return
  keras_tf_trainer.reduce_per_replica = _reduce_per_replica
  for layer in model._flatten_layers():
    if isinstance(layer, keras.layers.BatchNormalization):
      layer.synchronized = True

  def local(value):
    if isinstance(value, tf.distribute.DistributedValues):
      return strategy.experimental_local_results(value)[0]
    return value

  def symbolic_build(iterator=None, data_batch=None):
    if iterator is not None:
      for _, _, batches in iterator:
        data_batch = tree.map_structure(local, next(batches))
        break
    with strategy.scope():
      model._symbolic_build(data_batch=data_batch)

  model._maybe_symbolic_build = symbolic_build
