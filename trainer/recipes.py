"""Every model the trainer builds, by name (trainer.model_names), from the
data's manifest: the MFCC models of trainer.models and the models of
trainer.embedding_models."""

from collections.abc import Callable

import keras

from nsynth_contracts import manifest as manifest_lib
from trainer import embedding_models
from trainer import model_names
from trainer import models


def _mfcc_model(builder) -> Callable[[manifest_lib.Manifest], keras.Model]:
  def build(manifest: manifest_lib.Manifest) -> keras.Model:
    return builder(manifest.mfcc_shape, manifest.vocabulary.num_classes,
                   models.normalization_layer(manifest))
  return build


MODELS: dict[str, Callable[[manifest_lib.Manifest], keras.Model]] = {
    model_names.EMBEDDING_LINEAR: embedding_models.embedding_linear,
    model_names.EMBEDDING_MLP: embedding_models.embedding_mlp,
    model_names.SEED_CNN: _mfcc_model(models.seed_cnn),
    model_names.STATS_MLP: _mfcc_model(models.stats_mlp),
    model_names.TIMBRE_ENSEMBLE: _mfcc_model(models.timbre_ensemble),
    model_names.TIMBRE_TCN: _mfcc_model(models.timbre_tcn),
}


# Models trained to the end of their budget and kept there. A linear head on
# fixed representations is convex: there is no epoch for validation to pick,
# and what validation on our few sample libraries prefers is what transfers
# worst (BUILD_NOTES.md, "Choosing by what transfers"). The others keep the
# epoch with the best validation accuracy and stop early.
_KEPT_AT_LAST_EPOCH = frozenset({model_names.EMBEDDING_LINEAR})


def keeps_best_epoch(name: str) -> bool:
  """Whether training model `name` keeps its best validation epoch (and
  stops early), rather than its last."""
  return name not in _KEPT_AT_LAST_EPOCH


def build(name: str, manifest: manifest_lib.Manifest) -> keras.Model:
  """Raises:
    ValueError: an unknown name.
    embedding_models.ModelInputError: the data lacks what the model reads.
  """
  if name not in MODELS:
    raise ValueError(f'Unknown model {name!r}; choose one of {sorted(MODELS)}')
  return MODELS[name](manifest)
