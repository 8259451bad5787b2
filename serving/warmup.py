"""assets.extra/tf_serving_warmup_requests: PredictionLog records.

TF Serving replays them at load time (with --enable_model_warmup), so the
first real request does not pay for graph initialisation.
"""

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import model_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_log_pb2

from nsynth_contracts import audio
from serving import signatures

WARMUP_FILE = 'tf_serving_warmup_requests'
MAX_RECORDS = 1000  # TF Serving's limit


def warmup_clips(sample_rate_hz: int = 16000, seconds: float = 4.0
                 ) -> np.ndarray:
  """A few deterministic sounds: a decaying 440 Hz tone, seeded noise, silence.

  Returns:
    float32 [3, samples].
  """
  t = np.arange(int(sample_rate_hz * seconds)) / sample_rate_hz
  tone = 0.5 * np.sin(2 * np.pi * 440.0 * t) * np.exp(-t)
  noise = 0.1 * np.random.default_rng(0).standard_normal(t.shape)
  return np.stack([tone, noise, np.zeros_like(t)]).astype(np.float32)


def _log(model_name: str, signature: str, input_name: str,
         value) -> prediction_log_pb2.PredictionLog:
  request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(
      name=model_name, signature_name=signature))
  request.inputs[input_name].CopyFrom(value)
  return prediction_log_pb2.PredictionLog(
      predict_log=prediction_log_pb2.PredictLog(request=request))


def warmup_requests(model_name: str, clips: np.ndarray,
                    sample_rate_hz: int = 16000
                    ) -> list[prediction_log_pb2.PredictionLog]:
  """One request per note signature and batch shape (1 clip, all clips),
  and one per recording signature (the clips played one after another)."""
  def wav(samples):
    return audio.encode_pcm16(samples, sample_rate_hz)
  logs = []
  for batch in (clips[:1], clips):
    logs.append(_log(model_name, signatures.AUDIO_SIGNATURE,
                     signatures.AUDIO_INPUT, tf.make_tensor_proto(batch)))
    logs.append(_log(model_name, signatures.WAV_SIGNATURE,
                     signatures.WAV_INPUT, tf.make_tensor_proto(
                         [wav(c) for c in batch], dtype=tf.string)))
  recording = clips.reshape(-1)
  logs.append(_log(model_name, signatures.LONG_AUDIO_SIGNATURE,
                   signatures.LONG_AUDIO_INPUT,
                   tf.make_tensor_proto(recording)))
  logs.append(_log(model_name, signatures.LONG_WAV_SIGNATURE,
                   signatures.LONG_WAV_INPUT,
                   tf.make_tensor_proto(wav(recording), dtype=tf.string)))
  return logs


def write(path: str, logs: list[prediction_log_pb2.PredictionLog]) -> None:
  if len(logs) > MAX_RECORDS:
    raise ValueError(f'TF Serving reads at most {MAX_RECORDS} warmup records')
  with tf.io.TFRecordWriter(path) as writer:
    for log in logs:
      writer.write(log.SerializeToString())


def read(path: str) -> list[prediction_log_pb2.PredictionLog]:
  return [prediction_log_pb2.PredictionLog.FromString(r.numpy())
          for r in tf.data.TFRecordDataset(path)]
