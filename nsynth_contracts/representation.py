"""Pretrained representations: what a record may hold beside its MFCCs.

A representation turns a 16 kHz clip into one fixed-size vector with a frozen
network, in core TensorFlow ops, so that the Beam job, the trainer and every
serving signature compute it with the same function. `Representation` is
the interface a kind implements: its parameters (a frozen dataclass), where
its weights come from, how its network is built, and everything tuned to
its values (help text, bounds, the floor under its spread). A kind is one
module implementing it and one line in nsynth_contracts.representation_kinds
(the registry, which names the built-in kinds); nothing else in the project
names a kind:

* the Beam job reads its weights once in the launcher (`read_weights`),
  pickles them to the workers, runs `build_model` on every batch and writes
  the vector under the record key `key`;
* the manifest records it (`to_json`: its kind and its fields, its weights'
  SHA-256 and the training split's statistics), and
  representation_kinds.from_json rebuilds it;
* the trainer's models read it as the input named `key`, standardised with
  the spread floored at `std_floor`, and the export builds the same network
  from the same weights into the SavedModel.

Kept free of TensorFlow (a launcher or a manifest reader describes
representations without it); a kind imports its network's module only in
`read_weights` and `build_model`.
"""

import abc
import dataclasses
import hashlib
from typing import TYPE_CHECKING
from typing import ClassVar

import numpy as np

from nsynth_common import dataclass_json

if TYPE_CHECKING:  # Annotations only: build_model imports Keras when called.
  import keras

Weights = dict[str, np.ndarray]


class RepresentationError(ValueError):
  """A representation that cannot be described, parsed or computed as asked;
  the message says which and why, in one line."""


class Representation(abc.ABC):
  """One pretrained representation: parameters, weights, network, key.

  Implementations are frozen dataclasses (hashable, comparable, picklable to
  Beam workers) and set the class attributes below. Their fields are their
  parameters: the manifest holds them as written by params_json and read
  back strictly by from_params, which a kind overrides only if its JSON is
  not its fields.
  """

  kind: ClassVar[str]
  # What its command-line items look like, for help texts.
  usage: ClassVar[str]
  # What it is and where its weights come from, in a sentence, for help
  # texts.
  summary: ClassVar[str]
  # No value of a record of it comes near this magnitude: beyond it a finite
  # value is damage (a 1e30 overflows a loss as NaN does).
  max_abs_value: ClassVar[float]
  # Models standardise it by max(std, std_floor) per value: channels that
  # hardly move over the training notes would otherwise turn float
  # rounding into their loudest inputs.
  std_floor: ClassVar[float]

  @property
  @abc.abstractmethod
  def key(self) -> str:
    """Its feature key in records, in the manifest and as a model input; a
    lower-case identifier, distinct for distinct representations."""

  @property
  @abc.abstractmethod
  def size(self) -> int:
    """Values per clip."""

  @property
  @abc.abstractmethod
  def clip_samples(self) -> int:
    """Samples of the clip it hears (the MFCCs' clip, or it is refused)."""

  @property
  @abc.abstractmethod
  def sample_rate_hz(self) -> int:
    """The rate of the waveforms it takes (the MFCCs', or it is refused)."""

  def params_json(self) -> dict:
    """Its parameters as JSON (what from_params takes back): its fields."""
    return dataclass_json.to_json(self)

  @classmethod
  def from_params(cls, params: dict) -> 'Representation':
    """Its fields, read strictly (nsynth_common.dataclass_json), then
    checked by the kind's own __post_init__.

    Raises:
      RepresentationError: parameters it cannot take.
    """
    try:
      return dataclass_json.from_json(cls, params, f'{cls.kind} parameters')
    except dataclass_json.FieldError as e:
      raise RepresentationError(str(e)) from None

  @classmethod
  @abc.abstractmethod
  def parse(cls, text: str) -> 'Representation | None':
    """The representation a command-line item names (of the form `usage`
    says), or None if the item is not of this kind."""

  @abc.abstractmethod
  def weights_source(self) -> str:
    """Where its weights are read from, for messages (a path)."""

  @abc.abstractmethod
  def read_weights(self) -> Weights:
    """Every tensor of the network's weights.

    Raises:
      RepresentationError: naming the source and what is wrong (missing,
        truncated, a checksum that does not match), in one line.
    """

  @abc.abstractmethod
  def build_model(self, weights: Weights,
                  precision: str = 'float32') -> 'keras.Model':
    """The frozen network: float32 [batch, samples] 16 kHz waveforms in
    [-1, 1], any length (padded or trimmed to one clip) -> float32 [batch,
    size].

    Args:
      weights: what read_weights gave.
      precision: float32, or bfloat16 (nsynth_contracts.precision, resolved
        for the CPU that will run it): the kind multiplies in bfloat16
        where that keeps its answers within the tolerance stated in
        tests/test_precision.py, or nowhere.

    Raises:
      RepresentationError: a weight it needs is missing or has another
        shape.
    """

  def describe(self) -> str:
    """How people name it (the command-line item that gives it)."""
    return self.key

  def to_json(self) -> dict:
    return {'kind': self.kind, 'params': self.params_json()}


def check_distinct(representations) -> None:
  """Raises RepresentationError if two of them would share a record key."""
  keys = [r.key for r in representations]
  repeated = sorted({k for k in keys if keys.count(k) > 1})
  if repeated:
    raise RepresentationError(f'representation {repeated[0]} is named twice')


def weights_sha256(weights: Weights) -> str:
  """SHA-256 of weights as a network uses them.

  Over names, shapes and float32 little-endian bytes in name order, so the
  same weights give the same digest however they travelled (read from disk,
  or unpickled on a worker), and any changed value changes it.
  """
  digest = hashlib.sha256()
  for name in sorted(weights):
    array = np.ascontiguousarray(weights[name], dtype='<f4')
    digest.update(f'{name}:{array.shape};'.encode())
    digest.update(array.tobytes())
  return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class WithWeights:
  """A representation and its weights, read once by the launcher; they travel
  pickled with the Beam job's DoFn, so workers need no wheel or download."""
  representation: Representation
  weights: Weights
  weights_sha256: str

  @classmethod
  def read(cls, representation: Representation) -> 'WithWeights':
    """Reads the weights and checks them against the network before any
    work: every tensor read, every name and shape the network needs,
    every value finite, and a finite answer to a tone and to silence (which
    weights finite but absurd, such as biases of 1e30, do not give).

    Raises:
      RepresentationError: naming the weights' source and the fault.
    """
    return cls.read_with_network(representation)[0]

  @classmethod
  def read_with_network(cls, representation: Representation
                        ) -> tuple['WithWeights', 'keras.Model']:
    """read(), and the network the check built, for callers that run it
    here (the export, the phrase report) rather than build it twice."""
    weights = representation.read_weights()
    source = representation.weights_source()
    for name in sorted(weights):
      if not np.isfinite(weights[name]).all():
        raise RepresentationError(
            f'the {representation.describe()} weights at {source} hold NaN '
            f'or Inf (first in {name}): they cannot be used')
    model = representation.build_model(weights)
    seconds = (np.arange(representation.clip_samples) /
               representation.sample_rate_hz)
    probe = np.stack([0.1 * np.sin(2 * np.pi * 440.0 * seconds),
                      np.zeros_like(seconds)]).astype(np.float32)
    if not np.isfinite(np.asarray(model(probe, training=False))).all():
      raise RepresentationError(
          f'the {representation.describe()} weights at {source} give '
          f'non-finite values for a plain tone: they are damaged')
    return cls(representation, weights, weights_sha256(weights)), model
