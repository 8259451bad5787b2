"""A second kind of representation, for the plug-in test: a tiny network.

Everything a kind is, in one module, as nsynth_contracts.representation
asks: frozen parameters, weights (real NumPy arrays, drawn from a seed), a
network in core TensorFlow ops from a 16 kHz waveform to a fixed-size
vector, and what is tuned to its values. The network cuts a clip into
frames of `frame_samples`, projects each frame with a dense layer, takes
the ReLU, and averages over the frames: [batch, samples] -> [batch, width].

On the command line it is `tiny` or `tiny:WIDTH`.
"""

import dataclasses
from typing import ClassVar

import numpy as np

from nsynth_contracts import representation

KERNEL = 'frames/kernel'
BIAS = 'frames/bias'


@dataclasses.dataclass(frozen=True)
class TinyRepresentation(representation.Representation):
  """A seeded random projection of short frames, averaged over the clip."""

  kind: ClassVar[str] = 'tiny'
  usage: ClassVar[str] = 'tiny, optionally :WIDTH (values per clip)'
  summary: ClassVar[str] = ('tiny: a seeded random projection of 4 ms '
                            'frames, averaged over the clip (tests only)')
  # Frames of samples in [-1, 1] through weights of spread 1/sqrt(64):
  # a value is at most a few units.
  max_abs_value: ClassVar[float] = 1e3
  std_floor: ClassVar[float] = 1e-4

  width: int = 8
  seed: int = 7
  frame_samples: int = 64
  sample_rate_hz: int = 16000
  clip_seconds: float = 4.0

  def __post_init__(self):
    if self.width < 1 or self.frame_samples < 1:
      raise representation.RepresentationError(
          f'tiny width {self.width} and frame_samples {self.frame_samples} '
          f'must be positive')

  @property
  def key(self) -> str:
    return f'tiny_{self.width}'

  def describe(self) -> str:
    return f'tiny:{self.width}'

  @property
  def size(self) -> int:
    return self.width

  @property
  def clip_samples(self) -> int:
    return int(round(self.sample_rate_hz * self.clip_seconds))

  @classmethod
  def parse(cls, text: str) -> 'TinyRepresentation | None':
    name, _, width = text.partition(':')
    if name != cls.kind:
      return None
    if width and not width.isdigit():
      raise representation.RepresentationError(
          f'tiny width {width!r} is not a number')
    return cls(width=int(width)) if width else cls()

  def weights_source(self) -> str:
    return f'seed {self.seed}'

  def read_weights(self) -> representation.Weights:
    rng = np.random.default_rng(self.seed)
    scale = 1.0 / np.sqrt(self.frame_samples)
    return {
        KERNEL: (scale * rng.standard_normal(
            (self.frame_samples, self.width))).astype(np.float32),
        BIAS: (0.1 * rng.standard_normal(self.width)).astype(np.float32),
    }

  def build_model(self, weights: representation.Weights,
                  precision: str = 'float32'):
    """The same float32 network in either precision: nowhere does this
    kind multiply in bfloat16."""
    import keras
    import tensorflow as tf

    expected = {KERNEL: (self.frame_samples, self.width),
                BIAS: (self.width,)}
    for name, shape in expected.items():
      if name not in weights or tuple(weights[name].shape) != shape:
        raise representation.RepresentationError(
            f'the tiny weights have no {name} of shape {shape}')
    frames = self.clip_samples // self.frame_samples

    def framed(waveforms):
      clips = waveforms[:, :frames * self.frame_samples]
      clips = tf.pad(clips, [[0, 0], [0, frames * self.frame_samples -
                                      tf.shape(clips)[1]]])
      return tf.reshape(clips, [-1, frames, self.frame_samples])

    waveforms = keras.Input((None,), name='audio')
    x = keras.layers.Lambda(framed, name='frames_of_clip')(waveforms)
    dense = keras.layers.Dense(self.width, activation='relu', name='frames')
    x = dense(x)                                         # [B, frames, width]
    dense.set_weights([weights[KERNEL], weights[BIAS]])
    outputs = keras.layers.GlobalAveragePooling1D(name='over_time')(x)
    model = keras.Model(waveforms, outputs, name=f'tiny_{self.width}')
    model.trainable = False
    return model
