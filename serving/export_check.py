"""The export, reloaded and checked against the model it was made from.

Every signature answers the same sounds (a decaying tone, seeded noise,
silence) as the Keras model does on the features of the contract, and the
export answers the contract it was made with.
"""

import keras
import numpy as np
import tensorflow as tf

from nsynth_contracts import audio
from nsynth_contracts import precision
from nsynth_contracts import serving_contract
from nsynth_contracts import window_params
from nsynth_contracts import windows
from nsynth_contracts.clip_features import ClipFeatures
from serving import signatures
from serving import warmup


class ExportCheckError(ValueError):
  """The reloaded export disagrees with the model it was made from."""


def _check_close(answer: np.ndarray, expected: np.ndarray, tolerance: float,
                 what: str) -> None:
  difference = float(np.max(np.abs(answer - expected))) if (
      answer.shape == expected.shape) else float('inf')
  if not difference <= tolerance:
    raise ExportCheckError(
        f'the reloaded export disagrees with the model: {what} differs by '
        f'{difference:.3g} (shapes {answer.shape} and {expected.shape}), '
        f'more than {tolerance:g}')


# A bfloat16 twin's probabilities against the model's float32 ones: the
# largest difference measured on the demo's 708 test notes was 0.010 (every
# family the same); tests/test_precision.py pins the representation itself.
BFLOAT16_PROBABILITY_TOLERANCE = 0.03


def verify_export(path: str, model: keras.Model,
                  contract: serving_contract.ServingContract,
                  features_of: ClipFeatures | None = None,
                  bfloat16_twins: bool = False,
                  tolerance: float = 1e-5) -> None:
  """Reloads the SavedModel and checks it against the Keras model: every
  signature on the same sounds, and the contract it answers. The bfloat16
  twins (`bfloat16_twins`) are checked, within
  BFLOAT16_PROBABILITY_TOLERANCE, where this CPU runs bfloat16; elsewhere
  only their presence is.

  Raises:
    ExportCheckError: the reloaded export disagrees, naming the signature.
  """
  loaded = tf.saved_model.load(path)
  if signatures.read_contract(loaded, path) != contract:
    raise ExportCheckError(f'{path} answers another contract than it was '
                           f'made with')
  params = contract.feature_params
  clips = warmup.warmup_clips(params.sample_rate_hz, params.clip_seconds)
  # A silent clip is answered "no sound" with probabilities of zero.
  heard = windows.sounding(tf.constant(clips),
                           contract.windows).numpy()[:, np.newaxis]
  features_of = features_of or ClipFeatures(params)
  expected = np.where(heard, model(features_of(tf.constant(clips)),
                                   training=False).numpy(), 0.0)
  _check_signatures(loaded, contract, clips, heard, expected, 'float32',
                    tolerance)
  if not bfloat16_twins:
    return
  missing = [name for name in signatures.AUDIO_SIGNATURES
             if signatures.in_precision(name, 'bfloat16')
             not in loaded.signatures]
  if missing:
    raise ExportCheckError(f'{path} has no bfloat16 twin of {missing[0]}')
  if precision.bfloat16_unavailable_reason() is None:
    _check_signatures(loaded, contract, clips, heard, expected, 'bfloat16',
                      BFLOAT16_PROBABILITY_TOLERANCE)


def _check_signatures(loaded, contract: serving_contract.ServingContract,
                      clips: np.ndarray, heard: np.ndarray,
                      expected: np.ndarray, arithmetic: str,
                      tolerance: float) -> None:
  """The audio signatures computing in `arithmetic` against `expected`,
  the model's answers to `clips` ([B, classes], zero where not heard)."""
  params = contract.feature_params
  def named(signature):
    return signatures.in_precision(signature, arithmetic)
  by_audio = loaded.signatures[named(signatures.AUDIO_SIGNATURE)](
      audio=tf.constant(clips))
  _check_close(by_audio[signatures.PROBABILITIES].numpy(), expected,
               tolerance, named(signatures.AUDIO_SIGNATURE))
  families = [f.decode() for f in by_audio[signatures.FAMILY].numpy()]
  names = [contract.vocabulary.family(i) if h else window_params.NO_SOUND
           for i, h in zip(expected.argmax(axis=1), heard[:, 0])]
  if families != names:
    raise ExportCheckError(f'the reloaded export names {families} where the '
                           f'model names {names}')
  # WAV bytes are 16-bit: close to, not equal to, the float clips.
  by_wav = loaded.signatures[named(signatures.WAV_SIGNATURE)](wav=tf.constant(
      [audio.encode_pcm16(c, params.sample_rate_hz) for c in clips]))
  _check_close(by_wav[signatures.PROBABILITIES].numpy(), expected,
               max(tolerance, 1e-2), named(signatures.WAV_SIGNATURE))
  # A recording of one clip is one window: the note's own answer.
  tone = clips[0]
  long = loaded.signatures[named(signatures.LONG_AUDIO_SIGNATURE)](
      audio=tf.constant(tone))
  _check_close(long[signatures.PROBABILITIES].numpy(), expected[0],
               tolerance, named(signatures.LONG_AUDIO_SIGNATURE))
  long_wav = loaded.signatures[named(signatures.LONG_WAV_SIGNATURE)](
      wav=tf.constant(audio.encode_pcm16(tone, params.sample_rate_hz)))
  _check_close(long_wav[signatures.PROBABILITIES].numpy(), expected[0],
               max(tolerance, 1e-2), named(signatures.LONG_WAV_SIGNATURE))
