"""The NumPy half of the embedding contract: what the musicnn embedding is.

A pretrained music representation (musicnn, Pons & Serra 2019; its wheel
ships the weights under the ISC licence) turned into a fixed-size vector per
clip. nsynth_contracts.embedding, the TensorFlow half, computes it;
nsynth_contracts.musicnn_weights finds and reads the weights. Kept free of
TensorFlow, as feature_params is, so that describing the representation (a
manifest, a launcher) costs nothing.
"""

import dataclasses

from nsynth_contracts import feature_params

# Both are musicnn's 'musicnn' architecture, with the same layer widths: 50
# tags of MagnaTagATune (MTT) or of the Million Song Dataset (MSD).
MODEL_NAMES = ('MTT_musicnn', 'MSD_musicnn')

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
# How a frame layer is summarised over time, each per channel: its mean, max,
# standard deviation, and the mean of its absolute frame-to-frame change
# (how much the sound moves).
TIME_STATISTICS = ('mean', 'max', 'std', 'mean_abs_delta')


class EmbeddingParamsError(ValueError):
  """Parameters that do not describe an embedding we can compute."""


@dataclasses.dataclass(frozen=True)
class EmbeddingParams:
  """Every knob of the embedding, with units in the names.

  The spectrogram fields are musicnn's own (its configuration.py): changing
  them gives inputs the network was never trained on.
  """

  # Chosen on our validation: leave one library out, train a logistic
  # regression (standardised, C 0.1) on the other libraries' train
  # instruments, score their valid ones. MSD's temporal maps, mean and max,
  # scored 0.605 (mean of the three libraries), MSD's whole mid-end 0.566,
  # MTT's 0.499; on the held-out libraries themselves the choice scored 0.508.
  model_name: str = 'MSD_musicnn'
  layer: str = 'temporal'
  # For frame layers, in this order, concatenated. Adding the spread and the
  # frame-to-frame change (how a note evolves, not only how it sounds on
  # average) lifted the trainer's joint head on that validation; see
  # BUILD_NOTES, "Pretrained representation".
  time_statistics: tuple[str, ...] = TIME_STATISTICS
  sample_rate_hz: int = 16000
  clip_seconds: float = 4.0
  fft_length_samples: int = 512
  hop_length_samples: int = 256
  num_mel_bands: int = 96
  log_gain: float = 10000.0    # the network's input is log10(gain * mel + 1)

  def __post_init__(self):
    if self.model_name not in MODEL_NAMES:
      raise EmbeddingParamsError(
          f'model_name {self.model_name!r} is not one of {MODEL_NAMES}')
    if self.layer not in LAYER_WIDTHS:
      raise EmbeddingParamsError(
          f'layer {self.layer!r} is not one of {tuple(LAYER_WIDTHS)}')
    unknown = [s for s in self.time_statistics if s not in TIME_STATISTICS]
    if unknown or not self.time_statistics or len(
        set(self.time_statistics)) != len(self.time_statistics):
      raise EmbeddingParamsError(
          f'time_statistics {self.time_statistics!r} must be distinct names '
          f'of {TIME_STATISTICS}')

  @property
  def clip_samples(self) -> int:
    return self.spectrogram_params.clip_samples

  @property
  def num_frames(self) -> int:
    """Spectrogram frames of one clip: 251 for 4 s (one musicnn patch)."""
    return self.spectrogram_params.num_frames

  @property
  def spectrogram_params(self) -> feature_params.FeatureParams:
    """The mel spectrogram's parameters in the MFCC contract's terms, so
    that both contracts share one STFT and one Slaney mel matrix."""
    return feature_params.FeatureParams(
        sample_rate_hz=self.sample_rate_hz, clip_seconds=self.clip_seconds,
        fft_length_samples=self.fft_length_samples,
        hop_length_samples=self.hop_length_samples,
        num_mel_bands=self.num_mel_bands, num_mfcc=self.num_mel_bands)

  @property
  def pooled_over_time(self) -> bool:
    """Frame layers are summarised by time_statistics; clip layers not."""
    return self.layer in FRAME_LAYER_WIDTHS

  @property
  def layer_width(self) -> int:
    return LAYER_WIDTHS[self.layer]

  @property
  def output_size(self) -> int:
    """Values per clip: 612 for the temporal maps' four statistics."""
    return self.layer_width * (len(self.time_statistics)
                               if self.pooled_over_time else 1)

  def to_json(self) -> dict:
    data = dataclasses.asdict(self)
    data['time_statistics'] = list(self.time_statistics)
    return data

  @classmethod
  def from_json(cls, fields: dict) -> 'EmbeddingParams':
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(fields) - known
    if unknown:
      raise EmbeddingParamsError(
          f'Unknown embedding parameters: {sorted(unknown)}')
    fields = dict(fields)
    if 'time_statistics' in fields:
      fields['time_statistics'] = tuple(fields['time_statistics'])
    return cls(**fields)


DEFAULT_PARAMS = EmbeddingParams()
