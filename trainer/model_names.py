"""The names of the models the trainer builds, without importing Keras.

`nsynth-train --model` offers these before TensorFlow is loaded;
trainer.recipes builds each (a test checks that the two agree).
"""

EMBEDDING_LINEAR = 'embedding_linear'
EMBEDDING_MLP = 'embedding_mlp'
SEED_CNN = 'seed_cnn'
STATS_MLP = 'stats_mlp'
TIMBRE_ENSEMBLE = 'timbre_ensemble'
TIMBRE_TCN = 'timbre_tcn'

MODEL_NAMES = (EMBEDDING_LINEAR, EMBEDDING_MLP, SEED_CNN, STATS_MLP,
               TIMBRE_ENSEMBLE, TIMBRE_TCN)
