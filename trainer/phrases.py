"""Phrase-level evaluation: a trained model on whole recordings.

A phrase (demo_data.phrases, or any directory of labelled recordings in the
layout nsynth-tfrecords --recordings reads) is cut into windows and its
windows' answers aggregated by nsynth_contracts.windows, the functions the
serving signatures run, so this report measures what TF Serving answers.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from nsynth_contracts import audio_decoding
from nsynth_contracts import feature_params
from nsynth_contracts import labelled_recordings
from nsynth_contracts import labels
from nsynth_contracts import outcomes
from nsynth_contracts import window_params
from nsynth_contracts import windows as windows_lib
from nsynth_contracts.clip_features import ClipFeatures


@dataclasses.dataclass(frozen=True)
class PhrasePrediction:
  name: str
  instrument_str: str
  true_family: str
  window_probabilities: np.ndarray    # float32 [W, classes], sounding ones


def predict_phrases(model, directory: str, vocabulary: labels.LabelVocabulary,
                    params: feature_params.FeatureParams,
                    windows: window_params.WindowParams,
                    clip_features: ClipFeatures) -> list[PhrasePrediction]:
  """The window probabilities of every phrase whose family the model knows.

  `params` must be the model's own (its manifest's, or its export's
  contract), and `windows` those of the export whose answers the report
  stands for: there are no defaults, so that a model trained on other
  features cannot be fed ours.

  Recordings without a sounding window are left out (nothing to name).
  """
  predictions = []
  for recording in sorted(_recordings(directory), key=lambda r: r.name):
    if recording.family not in vocabulary.families:
      continue
    waveform = audio_decoding.read_file(
        recording.path, params.sample_rate_hz,
        max_seconds=windows.max_seconds).samples
    framed, _, sounding = windows_lib.frame_windows(waveform, params, windows)
    clips = tf.boolean_mask(framed, sounding)
    if not int(tf.shape(clips)[0]):
      continue
    window_probabilities = np.concatenate([
        model(clip_features(clips[i:i + 64]), training=False).numpy()
        for i in range(0, int(tf.shape(clips)[0]), 64)])
    predictions.append(PhrasePrediction(
        recording.name, recording.instrument_str, recording.family,
        window_probabilities))
  return predictions


def _recordings(directory: str) -> list[labelled_recordings.Recording]:
  """The directory's recordings, as the Beam job's --recordings reads them.

  Raises:
    labelled_recordings.RecordingsError: the directory or its labels.json
      is unusable, or a label is (the report would leave that recording out
      without a word).
  """
  recordings = []
  for item in labelled_recordings.recordings_of(directory):
    if isinstance(item, outcomes.DeadLetter):
      raise labelled_recordings.RecordingsError(
          f'{item.file}: {item.note_str}: {item.reason}')
    recordings.append(item)
  return recordings


def phrase_probabilities(predictions: list[PhrasePrediction]) -> np.ndarray:
  """float [phrases, classes]: each phrase aggregated as serving does."""
  return np.stack([windows_lib.aggregate(
      tf.constant(p.window_probabilities)).numpy() for p in predictions])
