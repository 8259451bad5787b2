"""The Beam job's graph: notes in; records, dead letters and manifest out.

`build_pipeline` wires the composite transforms of the other modules, each
of which can be run on its own with TestPipeline:

  NSynth split dirs -> SelectNotes -> FeaturizeNotes ---+--> WriteSplits
  --recordings dirs -> WindowRecordings ----------------+--> WriteManifest
  every stage's dead letters ----------------------------> WriteDeadLetters
  every stage's outcomes -> CountOutcomes ---------------> WriteManifest
"""

import posixpath

import apache_beam as beam

from beam_pipelines import accounting
from beam_pipelines import dataset_summary
from beam_pipelines import featurize
from beam_pipelines import output
from beam_pipelines import progress
from beam_pipelines import recordings
from beam_pipelines import selection
from beam_pipelines import writing
from beam_pipelines.batches import FeaturizedBatch
from beam_pipelines.job_config import JobConfig
from nsynth_contracts import representation


def featurizer(config: JobConfig,
               representations: tuple[representation.WithWeights, ...],
               windows: bool = False) -> featurize.Featurizer:
  """The job's per-worker feature state, for notes or for windows."""
  return featurize.Featurizer(config.params, config.keep_audio,
                              config.batch_size, config.jit_compile,
                              config.augment, config.train_split,
                              windows=windows,
                              representations=representations,
                              precision=config.precision)


def build_pipeline(pipeline: beam.Pipeline, config: JobConfig,
                   dataset_dir: str,
                   representations: tuple[representation.WithWeights, ...]
                   = (),
                   progress_address: progress.Address | None = None
                   ) -> None:
  """Adds the whole job to `pipeline`, writing into `dataset_dir`.

  Args:
    representations: config.representations with their weights, read once
      by the launcher: from here on the one value that says which
      representations the records hold.
    progress_address: where the workers count the notes and windows they
      featurise (None: nowhere).
  """
  notes = pipeline | 'Notes' >> selection.SelectNotes(config)
  featurized = notes[accounting.NOTES] | 'Featurize' >> (
      featurize.FeaturizeNotes(featurizer(config, representations),
                               progress_address))
  batches = [featurized[accounting.NOTES]]
  dead_letters = [notes[accounting.DEAD_LETTERS],
                  featurized[accounting.DEAD_LETTERS]]
  outcomes = {'filtered': notes[accounting.FILTERED]}
  if config.recordings:
    windowed = pipeline | 'Recordings' >> recordings.WindowRecordings(
        [d for d, _ in config.recordings], config.kept_sources,
        config.vocabulary, featurizer(config, representations, windows=True),
        config.windows, progress_address)
    batches.append(windowed[accounting.NOTES])
    dead_letters.append(windowed[accounting.DEAD_LETTERS])
    outcomes.update(
        recordings_filtered=windowed[accounting.FILTERED],
        recordings_windowed=windowed[accounting.RECORDINGS_WINDOWED])
  # Batches of notes (and windows) from here on, each of one split.
  batches = (batches
             | 'AllBatches' >> beam.Flatten()
             | 'PerSplit' >> beam.FlatMap(FeaturizedBatch.per_split))
  dead_letters = dead_letters | 'AllDeadLetters' >> beam.Flatten()
  _ = batches | 'Records' >> writing.WriteSplits(config, dataset_dir)
  _ = dead_letters | 'DeadLetters' >> writing.WriteDeadLetters(
      posixpath.join(dataset_dir, output.DEAD_LETTERS_DIR))
  outcomes.update(written=batches, dead_lettered=dead_letters)
  counts = outcomes | 'Account' >> accounting.CountOutcomes()
  _ = ({dataset_summary.BATCHES: batches, dataset_summary.COUNTS: counts}
       | 'Manifest' >> dataset_summary.WriteManifest(
           config, dataset_dir, representations))
