"""What the job writes: the records of each split, and the dead letters.

Records are tf.train.Examples serialized by nsynth_contracts.schema and
framed by our TFRecord sink; dead letters are one JSON line each.
"""

import posixpath

import apache_beam as beam

from beam_pipelines import output
from beam_pipelines import tfrecord_sink
from beam_pipelines.batches import FeaturizedBatch
from beam_pipelines.job_config import JobConfig
from nsynth_contracts import labels
from nsynth_contracts import manifest as manifest_lib
from nsynth_contracts import outcomes
from nsynth_contracts import schema


def to_serialized_examples(batch: FeaturizedBatch,
                           vocabulary: labels.LabelVocabulary) -> list[bytes]:
  """One serialized tf.train.Example per row of the batch."""
  return [
      schema.serialize_note(schema.NoteExample(
          mfcc=batch.mfccs[i],
          label=vocabulary.label_id(note.family),
          family=note.family,
          source=note.source,
          instrument=note.instrument_str,
          pitch=note.pitch,
          velocity=note.velocity,
          note_str=note.note_str,
          augmentation=batch.copy_of(i),
          audio=None if batch.clips is None else batch.clips[i],
          representations={key: values[i] for key, values
                           in batch.representations.items()}))
      for i, note in enumerate(batch.notes)]


def _split_index(batch: FeaturizedBatch, _: int, split_names: list[str]
                 ) -> int:
  return split_names.index(batch.split)


class WriteSplits(beam.PTransform):
  """FeaturizedBatches (each of one split) -> one set of TFRecord shards per
  split, `<split>-SSSSS-of-NNNNN.tfrecord[.gz]` in `directory`."""

  def __init__(self, config: JobConfig, directory: str):
    super().__init__()
    self._config = config
    self._directory = directory

  def expand(self, batches):
    config = self._config
    names = list(config.output_splits)
    by_split = batches | 'BySplit' >> beam.Partition(_split_index, len(names),
                                                     names)
    level = (config.compression_level
             if config.compression == manifest_lib.GZIP else None)
    for name, split_batches in zip(names, by_split):
      _ = (split_batches
           | f'Serialize[{name}]' >> beam.FlatMap(to_serialized_examples,
                                                  config.vocabulary)
           | f'Write[{name}]' >> tfrecord_sink.WriteToTFRecord(
               posixpath.join(self._directory,
                              manifest_lib.shard_prefix(name)),
               config.shard_suffix, config.num_shards, level))


class WriteDeadLetters(beam.PTransform):
  """DeadLetters -> one JSON line each, in dead_letters-*.jsonl."""

  def __init__(self, directory: str):
    super().__init__()
    self._directory = directory

  def expand(self, dead_letters):
    return (dead_letters
            | 'Json' >> beam.Map(outcomes.DeadLetter.to_json_line)
            | 'Write' >> beam.io.WriteToText(
                posixpath.join(self._directory, output.DEAD_LETTERS_PREFIX),
                file_name_suffix='.jsonl'))
