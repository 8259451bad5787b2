"""What one run of the Beam job does: its settings, defined once.

The command's flags take their defaults from `JobConfig`; tests and scripts
build one directly and call `beam_pipelines.job.run_job`.
"""

import dataclasses

from beam_pipelines import augmentation
from beam_pipelines import splits
from beam_pipelines import tfrecord_sink
from nsynth_contracts import feature_params
from nsynth_contracts import labels
from nsynth_contracts import manifest as manifest_lib
from nsynth_contracts import precision
from nsynth_contracts import representation
from nsynth_contracts import representation_kinds
from nsynth_contracts import window_params


@dataclasses.dataclass(frozen=True)
class JobConfig:
  """Everything the job does; the flags take their defaults from here."""
  inputs: tuple[tuple[str, str], ...]        # (split directory, split name)
  output_dir: str
  kept_sources: tuple[str, ...] = labels.DEFAULT_KEPT_SOURCES
  dropped_families: tuple[str, ...] = labels.DEFAULT_DROPPED_FAMILIES
  max_notes_per_family: int = 0              # 0: no cap
  split_method: splits.SplitMethod = splits.SplitMethod.DIRECTORIES
  split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
  keep_audio: bool = False
  num_shards: int = 0                        # 0: the runner decides
  compression: str = manifest_lib.GZIP      # or NONE: TFDS-loadable
  compression_level: int = tfrecord_sink.DEFAULT_COMPRESSION_LEVEL
  batch_size: int = 64
  jit_compile: bool = True
  # The split trained on: its statistics normalise the models' input, and
  # only its notes get augmented copies.
  train_split: str = 'train'
  holdout_library: str = ''                  # leave-one-library-out
  recordings: tuple[tuple[str, str], ...] = ()   # (directory, split name)
  windows: window_params.WindowParams = window_params.DEFAULT_WINDOWS
  augment: augmentation.AugmentationConfig = augmentation.AugmentationConfig()
  overwrite: bool = False
  params: feature_params.FeatureParams = feature_params.DEFAULT_PARAMS
  # The pretrained representations written beside the MFCCs, each under its
  # key, in this order (empty: none).
  representations: tuple[representation.Representation, ...] = (
      representation_kinds.DEFAULT)
  # What the workers run the representations' networks in: each resolves
  # `auto` for its own CPU (nsynth_contracts.precision).
  precision: str = precision.AUTO

  @property
  def vocabulary(self) -> labels.LabelVocabulary:
    return labels.LabelVocabulary.from_filters(self.kept_sources,
                                               self.dropped_families)

  @property
  def shard_suffix(self) -> str:
    return manifest_lib.SHARD_SUFFIXES[self.compression]

  @property
  def output_splits(self) -> tuple[str, ...]:
    names = (tuple(dict.fromkeys(name for _, name in self.inputs))
             if self.split_method is splits.SplitMethod.DIRECTORIES
             else splits.SPLIT_NAMES)
    return names + tuple(dict.fromkeys(
        split for _, split in self.recordings if split not in names))

