"""The heads on pretrained representations, on a manifest of our making.

embedding_linear claims to be scikit-learn's LogisticRegression at
C = INVERSE_REGULARIZATION_C on the standardised representations: trained
to convergence on the same data it reaches the same weights and answers.
embedding_mlp reads every representation the data holds, standardised, and
learns what they separate.
"""

import dataclasses
import json
import pathlib

import keras
import numpy as np
import pytest
import scipy.optimize
import sklearn.linear_model
import tensorflow as tf

from nsynth_contracts import manifest as manifest_lib
from tests import tiny_representation
from trainer import embedding_models
from trainer import layers
from trainer import models

WRITTEN = pathlib.Path(__file__).parent / 'data' / 'manifest_v3.json'
CLASSES = 9


def data(n_per_class: int, width: int, seed: int, spread: float = 1.5):
  """(values [N, width], labels [N]): a cluster per class (overlapping at
  the default spread), on scales far from 1, one channel all but
  constant."""
  rng = np.random.default_rng(seed)
  centres = rng.normal(0.0, 1.0, (CLASSES, width))
  labels = np.repeat(np.arange(CLASSES), n_per_class)
  values = centres[labels] + rng.normal(0.0, spread, (len(labels), width))
  values = values * rng.uniform(0.1, 20.0, width) + rng.normal(0, 5, width)
  values[:, 0] = 3.0 + 1e-7 * rng.normal(size=len(labels))
  return values.astype(np.float32), labels


def manifest_for(*samples) -> manifest_lib.Manifest:
  """The written manifest, its representations replaced by one tiny kind
  per sample, with the sample's statistics, and the sample's size as the
  training split's."""
  manifest = manifest_lib.Manifest.from_json(json.loads(WRITTEN.read_text()))
  records = []
  for i, values in enumerate(samples):
    kind = tiny_representation.TinyRepresentation(width=values.shape[1],
                                                  seed=i)
    records.append(manifest_lib.RepresentationRecord(
        kind, 'sha', manifest_lib.Normalization(
            'train', len(values), values.astype(np.float64).mean(0).tolist(),
            values.astype(np.float64).std(0).tolist())))
  splits = dict(manifest.splits)
  splits['train'] = dataclasses.replace(splits['train'],
                                        num_examples=len(samples[0]))
  return dataclasses.replace(manifest, representations=tuple(records),
                             splits=splits)


def standardised(values, record: manifest_lib.RepresentationRecord):
  std = np.maximum(record.normalization.std,
                   record.representation.std_floor)
  return (values - np.asarray(record.normalization.mean)) / std


def fitted_to_convergence(model: keras.Model, values, one_hot) -> None:
  """Minimises the model's own training loss (its cross-entropy and its
  regulariser) with L-BFGS, as scikit-learn's solver does, on all of the
  data at once."""
  weights = model.trainable_variables
  shapes = [tuple(w.shape) for w in weights]
  sizes = [int(np.prod(shape)) for shape in shapes]

  @tf.function
  def loss_and_gradient():
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(keras.losses.categorical_crossentropy(
          one_hot, model(values, training=True))) + tf.add_n(model.losses)
    return loss, tape.gradient(loss, weights)

  def objective(flat):
    for weight, part, shape in zip(weights, np.split(
        flat, np.cumsum(sizes)[:-1]), shapes):
      weight.assign(part.reshape(shape).astype(np.float32))
    loss, gradient = loss_and_gradient()
    return float(loss), np.concatenate(
        [g.numpy().ravel() for g in gradient]).astype(np.float64)

  start = np.concatenate([w.numpy().ravel() for w in weights])
  result = scipy.optimize.minimize(objective, start, jac=True,
                                   method='L-BFGS-B',
                                   options={'maxiter': 5000, 'gtol': 1e-7})
  objective(result.x)


def test_embedding_linear_is_scikit_learns_logistic_regression():
  values, labels = data(40, 6, seed=0)
  manifest = manifest_for(values)
  model = embedding_models.embedding_linear(manifest)
  fitted_to_convergence(model, values,
                        np.eye(CLASSES, dtype=np.float32)[labels])

  standard = standardised(values, manifest.representations[0])
  reference = sklearn.linear_model.LogisticRegression(
      C=embedding_models.INVERSE_REGULARIZATION_C, tol=1e-10,
      max_iter=10_000).fit(standard, labels)
  kernel, bias = model.get_layer('probabilities').get_weights()
  # Softmax's weights are unique up to a shift shared by every class; the
  # penalty picks the shift for the kernel, not for the unpenalised bias.
  np.testing.assert_allclose(kernel.T, reference.coef_, atol=1e-4)
  # (The bias, which the loss holds more loosely, to float32's reach.)
  np.testing.assert_allclose(bias - bias.mean(), reference.intercept_ -
                             reference.intercept_.mean(), atol=1e-3)
  np.testing.assert_allclose(model.predict(values, verbose=0),
                             reference.predict_proba(standard), atol=1e-4)
  # And the penalty is C's, not any other: a tenth of it fits otherwise.
  weaker = sklearn.linear_model.LogisticRegression(
      C=10 * embedding_models.INVERSE_REGULARIZATION_C, max_iter=10_000
  ).fit(standard, labels)
  assert np.abs(kernel.T - weaker.coef_).max() > 0.01


def test_embedding_mlp_reads_every_representation_standardised():
  first, labels = data(30, 5, seed=1)
  second, _ = data(30, 3, seed=2)
  manifest = manifest_for(first, second)
  model = embedding_models.embedding_mlp(manifest)
  keys = tuple(r.key for r in manifest.representations)
  assert sorted(layers.input_names(model)) == sorted(keys)
  inputs = {keys[0]: first, keys[1]: second}
  # Its first layers standardise each representation as the manifest says
  # (the floor under the all-but-constant channel included).
  joined = keras.Model(model.inputs, model.get_layer('representations').output)
  np.testing.assert_allclose(
      joined(inputs), np.concatenate([
          standardised(v, r) for v, r in zip(
              (first, second), manifest.representations)], axis=1),
      rtol=1e-4, atol=1e-4)
  # Dropout only while training: the same answer twice.
  np.testing.assert_array_equal(model(inputs, training=False),
                                model(inputs, training=False))


def test_embedding_mlp_learns_what_its_inputs_separate(tmp_path):
  values, labels = data(30, 8, seed=3, spread=0.2)
  manifest = manifest_for(values)
  model = embedding_models.embedding_mlp(manifest)
  model.compile(optimizer=keras.optimizers.Adam(1e-2),
                loss='categorical_crossentropy', metrics=['accuracy'])
  keras.utils.set_random_seed(0)
  model.fit(values, np.eye(CLASSES)[labels], batch_size=32, epochs=60,
            verbose=0)
  predicted = np.argmax(model.predict(values, verbose=0), axis=1)
  assert np.mean(predicted == labels) > 0.9
  path = str(tmp_path / 'model.keras')
  model.save(path)
  np.testing.assert_allclose(models.load(path).predict(values, verbose=0),
                             model.predict(values, verbose=0), atol=1e-6)


@pytest.fixture(autouse=True)
def _quiet():
  tf.get_logger().setLevel('ERROR')
