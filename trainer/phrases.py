"""Phrase-level evaluation: a trained model on whole recordings.

A phrase (demo_data.phrases, or any directory of labelled recordings in the
layout nsynth-tfrecords --recordings reads) is cut into windows and its
windows' answers aggregated by nsynth_contracts.windows, the functions the
serving signatures run, so this report measures what TF Serving answers.
"""

import dataclasses
import json
import posixpath

import numpy as np
import tensorflow as tf

from nsynth_contracts import audio_decoding
from nsynth_contracts import feature_params
from nsynth_contracts import features
from nsynth_contracts import labels
from nsynth_contracts import windows as windows_lib


@dataclasses.dataclass(frozen=True)
class PhrasePrediction:
  name: str
  instrument_str: str
  true_family: str
  window_probabilities: np.ndarray    # float32 [W, classes], sounding ones


def read_phrase_labels(directory: str) -> dict[str, dict]:
  """{file name: label} of a recordings directory (labels.json)."""
  with tf.io.gfile.GFile(posixpath.join(directory, 'labels.json')) as f:
    return json.load(f)


def predict_phrases(model, directory: str, vocabulary: labels.LabelVocabulary,
                    params: feature_params.FeatureParams,
                    windows: windows_lib.WindowParams = (
                        windows_lib.DEFAULT_WINDOWS)
                    ) -> list[PhrasePrediction]:
  """The window probabilities of every phrase whose family the model knows.

  `params` must be the model's own (its manifest's feature_params): there is
  no default, so that a model trained on other features cannot be fed ours.

  Recordings without a sounding window are left out (nothing to name).
  """
  predictions = []
  for name, label in sorted(read_phrase_labels(directory).items()):
    if label['family'] not in vocabulary.families:
      continue
    waveform = audio_decoding.read_file(
        posixpath.join(directory, 'audio', name), params.sample_rate_hz,
        max_seconds=windows.max_seconds).samples
    framed, _, sounding = windows_lib.frame_windows(waveform, params, windows)
    clips = tf.boolean_mask(framed, sounding)
    if not int(tf.shape(clips)[0]):
      continue
    window_probabilities = np.concatenate([
        model(features.waveform_to_mfcc(clips[i:i + 64], params),
              training=False).numpy()
        for i in range(0, int(tf.shape(clips)[0]), 64)])
    predictions.append(PhrasePrediction(
        name, label.get('instrument_str', name), label['family'],
        window_probabilities))
  return predictions


def phrase_probabilities(predictions: list[PhrasePrediction]) -> np.ndarray:
  """float [phrases, classes]: each phrase aggregated as serving does."""
  return np.stack([windows_lib.aggregate(
      tf.constant(p.window_probabilities)).numpy() for p in predictions])
