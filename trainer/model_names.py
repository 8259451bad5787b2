"""The names of the models the trainer builds, without importing Keras.

`nsynth-train --model` offers these before TensorFlow is loaded;
trainer.recipes builds each (a test checks that the two agree).
"""

MUSICNN_ENSEMBLE = 'musicnn_ensemble'
SEED_CNN = 'seed_cnn'
STATS_MLP = 'stats_mlp'
TIMBRE_ENSEMBLE = 'timbre_ensemble'
TIMBRE_TCN = 'timbre_tcn'

MODEL_NAMES = (MUSICNN_ENSEMBLE, SEED_CNN, STATS_MLP, TIMBRE_ENSEMBLE,
               TIMBRE_TCN)
