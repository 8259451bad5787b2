"""musicnn as a representation: which network, which layer, which statistics.

A pretrained music tagger (musicnn, Pons & Serra 2019; its wheel ships the
weights under the ISC licence) turned into a fixed-size vector per clip.
nsynth_contracts.musicnn_network, the TensorFlow half, builds the network;
nsynth_contracts.musicnn_weights finds and reads the weights. This half is
NumPy only, as feature_params is, so that describing it costs nothing.

On the command line a musicnn representation is `MODEL[:LAYER]`, e.g.
`MTT_musicnn:midend`; frame layers are summarised over time by
TIME_STATISTICS.
"""

import dataclasses
from typing import ClassVar

from nsynth_contracts import feature_params
from nsynth_contracts import musicnn_architecture
from nsynth_contracts import representation

# The architecture's names, here under the names this kind always used.
MODEL_NAMES = musicnn_architecture.MODEL_NAMES
FRAME_LAYER_WIDTHS = musicnn_architecture.FRAME_LAYER_WIDTHS
CLIP_LAYER_WIDTHS = musicnn_architecture.CLIP_LAYER_WIDTHS
LAYER_WIDTHS = musicnn_architecture.LAYER_WIDTHS
DEFAULT_LAYER = musicnn_architecture.DEFAULT_LAYER
TIME_STATISTICS = musicnn_architecture.TIME_STATISTICS


@dataclasses.dataclass(frozen=True)
class MusicnnRepresentation(representation.Representation):
  """musicnn's embedding of a clip; every knob, with units in the names.

  The spectrogram fields are musicnn's own (its configuration.py): other
  values give inputs the network was never trained on.
  """

  kind: ClassVar[str] = 'musicnn'
  usage: ClassVar[str] = (
      f'{" or ".join(MODEL_NAMES)}, optionally :LAYER, one of '
      f'{", ".join(LAYER_WIDTHS)} (default {DEFAULT_LAYER})')
  summary: ClassVar[str] = (
      'musicnn: a tagger trained on MagnaTagATune (MTT) or the Million Song '
      'Dataset (MSD), whose weights come from the musicnn wheel (ISC '
      'licence); frame layers are summarised over time by their mean, max, '
      'standard deviation and mean absolute frame-to-frame change')
  # Its pooled maps of any audio within the Beam job's sample bound stay
  # within a few hundred (BUILD_NOTES.md, "Reliability 3").
  max_abs_value: ClassVar[float] = 1e6
  # Most of its channels hardly move on single synthesised notes (spreads
  # down to 1e-10); 0.01 is about the smallest spread of a channel that
  # fires (BUILD_NOTES.md, "Pretrained representation").
  std_floor: ClassVar[float] = 0.01

  # The default, MagnaTagATune's mid-end with four statistics: of the layers
  # measured, the one that named the family of notes from sample libraries
  # never heard best (BUILD_NOTES.md, "Choosing by what transfers").
  model_name: str = 'MTT_musicnn'
  layer: str = DEFAULT_LAYER
  # For frame layers, in this order, concatenated.
  time_statistics: tuple[str, ...] = TIME_STATISTICS
  sample_rate_hz: int = 16000
  clip_seconds: float = 4.0
  fft_length_samples: int = 512
  hop_length_samples: int = 256
  num_mel_bands: int = musicnn_architecture.NUM_MEL_BANDS
  log_gain: float = 10000.0    # the network's input is log10(gain * mel + 1)

  def __post_init__(self):
    if self.model_name not in MODEL_NAMES:
      raise representation.RepresentationError(
          f'model_name {self.model_name!r} is not one of {MODEL_NAMES}')
    if self.layer not in LAYER_WIDTHS:
      raise representation.RepresentationError(
          f'layer {self.layer!r} is not one of {tuple(LAYER_WIDTHS)}')
    unknown = [s for s in self.time_statistics if s not in TIME_STATISTICS]
    if unknown or not self.time_statistics or len(
        set(self.time_statistics)) != len(self.time_statistics):
      raise representation.RepresentationError(
          f'time_statistics {self.time_statistics!r} must be distinct names '
          f'of {TIME_STATISTICS}')

  @property
  def key(self) -> str:
    """e.g. 'mtt_musicnn_midend'."""
    return f'{self.model_name.lower()}_{self.layer}'

  def describe(self) -> str:
    return f'{self.model_name}:{self.layer}'

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
  def size(self) -> int:
    """Values per clip: 3,012 for the mid-end's four statistics."""
    return self.layer_width * (len(self.time_statistics)
                               if self.pooled_over_time else 1)

  @classmethod
  def parse(cls, text: str) -> 'MusicnnRepresentation | None':
    model_name, _, layer = text.partition(':')
    if model_name not in MODEL_NAMES:
      return None
    return cls(model_name=model_name, layer=layer or DEFAULT_LAYER)

  # The computing half lives in musicnn_weights (the checkpoint) and
  # musicnn_network (TensorFlow), imported only when used.
  def weights_source(self) -> str:
    from nsynth_contracts import musicnn_weights
    try:
      return musicnn_weights.checkpoint_prefix(self.model_name)
    except musicnn_weights.MusicnnWeightsError:
      return f'the musicnn wheel ({musicnn_weights.INSTALL_HINT})'

  def read_weights(self) -> representation.Weights:
    from nsynth_contracts import musicnn_weights
    try:
      return musicnn_weights.read_weights(self.model_name)
    except musicnn_weights.MusicnnWeightsError as e:
      raise representation.RepresentationError(str(e)) from None

  def build_model(self, weights: representation.Weights,
                  precision: str = 'float32'):
    from nsynth_contracts import musicnn_network
    from nsynth_contracts import musicnn_weights
    try:
      return musicnn_network.build_embedding_model(weights, self, precision)
    except musicnn_weights.MusicnnWeightsError as e:
      raise representation.RepresentationError(str(e)) from None


DEFAULT = MusicnnRepresentation()
