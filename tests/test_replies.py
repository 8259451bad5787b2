"""What a reply must be before the client uses any of it: every field of a
recording's answer, checked, and refused in one line naming the field."""

import json

import pytest

from serving import replies
from serving import signatures

CLASSES = ['bass', 'brass', 'flute']
WHERE = 'http://127.0.0.1:8501'


def recording_reply(**changes) -> dict:
  """A well-formed answer for a 10 s recording (5 windows every 2 s), as it
  comes out of TF Serving's JSON, with `changes` applied."""
  rows = [[0.7, 0.2, 0.1]] * 5
  reply = {
      signatures.PROBABILITIES: [0.7, 0.2, 0.1],
      signatures.CLASSES: CLASSES,
      signatures.FAMILY: 'bass',
      signatures.WINDOW_PROBABILITIES: rows,
      signatures.WINDOW_START_SECONDS: [0.0, 2.0, 4.0, 6.0, 8.0],
  }
  reply.update(changes)
  return json.loads(json.dumps(reply))


def check(reply, max_windows=5):
  return replies.checked_outputs(reply, None, WHERE, max_windows)


def test_a_well_formed_recording_reply_passes_whole():
  outputs = check(recording_reply())
  assert outputs[signatures.WINDOW_PROBABILITIES].shape == (5, 3)
  assert outputs[signatures.FAMILY] == 'bass'


def test_a_recording_with_no_sounding_window_is_an_answer():
  outputs = check(recording_reply(**{signatures.WINDOW_PROBABILITIES: [],
                                     signatures.WINDOW_START_SECONDS: []}))
  assert outputs[signatures.WINDOW_PROBABILITIES].shape == (0, 3)


W = signatures.WINDOW_PROBABILITIES
S = signatures.WINDOW_START_SECONDS
NAN_ROW = json.loads('[NaN, 0.2, 0.1]')


@pytest.mark.parametrize('changes, words', [
    ({W: [NAN_ROW] * 5}, f"{W!r} that are not numbers in [0, 1]"),
    ({W: [[-5.0, 0.2, 0.1]] * 5}, f"{W!r} that are not numbers in [0, 1]"),
    ({W: [[0.9, 0.9, 0.9]] * 5}, f"{W!r} that do not sum to 1 (one sums "
                                 f"to 2.7)"),
    ({W: [[0.7, 0.2, 0.1]] * 4 + [[0.1, 0.1, 0.1]]},
     f"{W!r} that do not sum to 1 (one sums to 0.3)"),
    ({signatures.PROBABILITIES: [1.0, 1.0, 1.0]},
     "'probabilities' that do not sum to 1 (one sums to 3)"),
    ({W: [[0.5, 0.2, 0.1, 0.1]] * 5}, f"{W!r} of shape [5, 4]"),
    ({W: [[]] * 5}, f"{W!r} of shape [5, 0]"),
    ({W: 0.5}, f"{W!r} of shape []"),
    ({W: [['a', 'b', 'c']] * 5}, f"{W!r} that are not numbers"),
    ({S: ['0', '2', '4', '6', '8']}, f"{S!r} that are not 5 increasing"),
    ({S: [0.0, 2.0, 4.0]}, f"{S!r} that are not 5 increasing"),
    ({S: [0.0, 2.0, 2.0, 6.0, 8.0]}, f"{S!r} that are not 5 increasing"),
    ({S: 3.0}, f"{S!r} that are not 5 increasing"),
    ({signatures.FAMILY: ['bass', 'flute']}, "'family' that is not one string"),
    ({signatures.FAMILY: 3}, "'family' that is not one string"),
])
def test_a_recording_reply_with_a_bad_field_is_refused_naming_it(changes,
                                                                 words):
  with pytest.raises(replies.ServerError) as error:
    check(recording_reply(**changes))
  message = str(error.value)
  assert message.startswith(f'the reply from {WHERE} ')
  assert words in message and '\n' not in message


def test_notes_with_no_sound_sum_to_nothing_and_pass():
  outputs = replies.checked_outputs(
      {signatures.PROBABILITIES: [[0.0, 0.0, 0.0], [0.25, 0.5, 0.25]],
       signatures.CLASSES: [CLASSES, CLASSES]}, 2, WHERE)
  assert outputs[signatures.PROBABILITIES].shape == (2, 3)
  with pytest.raises(replies.ServerError, match='do not sum to 1'):
    replies.checked_outputs(
        {signatures.PROBABILITIES: [[0.0, 0.0, 0.0], [0.9, 0.9, 0.9]],
         signatures.CLASSES: [CLASSES, CLASSES]}, 2, WHERE)


def test_more_windows_than_the_audio_sent_can_have_are_refused():
  many = 100_000
  reply = recording_reply(**{W: [[0.7, 0.2, 0.1]] * many,
                             S: list(range(many))})
  with pytest.raises(replies.ServerError, match=(
      f"{many} windows in {W!r}; the recording sent has at most 6")):
    check(reply, max_windows=6)


def test_window_counts_agree_with_how_a_recording_is_cut():
  """WindowParams.num_windows, which bounds a reply, against the cutting
  function the signatures run."""
  import tensorflow as tf

  from nsynth_contracts import feature_params
  from nsynth_contracts import window_params
  from nsynth_contracts import windows
  params = feature_params.DEFAULT_PARAMS
  cut = window_params.DEFAULT_WINDOWS
  for samples in (1, params.clip_samples, params.clip_samples + 1,
                  10 * params.sample_rate_hz, 10 * params.sample_rate_hz + 7):
    framed, _, _ = windows.frame_windows(tf.zeros([samples]), params, cut)
    assert framed.shape[0] == cut.num_windows(samples, params), samples
