"""musicnn's architecture in names and numbers: its models, layers, widths.

Shared by the representation's parameters (musicnn_representation), its
weights (musicnn_weights) and its network (musicnn_network), none of which
needs another to know them.
"""

# Both are musicnn's 'musicnn' architecture, with the same layer widths: 50
# tags of MagnaTagATune (MTT) or of the Million Song Dataset (MSD).
MODEL_NAMES = ('MTT_musicnn', 'MSD_musicnn')
# Mel bands of its input, as both models were trained.
NUM_MEL_BANDS = 96

# Layers that give one vector per spectrogram frame, and their widths.
# 'midend' is every front- and mid-end map concatenated, what musicnn's
# extractor pools into `mean_pool` and `max_pool`.
FRAME_LAYER_WIDTHS = {
    'timbral': 408,    # two vertical filter shapes, 204 filters each
    'temporal': 153,   # three horizontal filter lengths, 51 filters each
    'cnn1': 64,
    'cnn2': 64,
    'cnn3': 64,
    'midend': 753,     # timbral + temporal + cnn1 + cnn2 + cnn3
}
# Layers that give one vector per patch: a 4 s clip is one patch.
CLIP_LAYER_WIDTHS = {
    'penultimate': 200,
    'taggram': 50,     # the tag probabilities
}
LAYER_WIDTHS = {**FRAME_LAYER_WIDTHS, **CLIP_LAYER_WIDTHS}
DEFAULT_LAYER = 'midend'
# How a frame layer is summarised over time, each per channel: its mean, max,
# standard deviation, and the mean of its absolute frame-to-frame change
# (how much the sound moves).
TIME_STATISTICS = ('mean', 'max', 'std', 'mean_abs_delta')
