r"""Benchmark: where musicnn's time goes for a note, step by step, in each
precision.

Usage:
  python -m benchmarks.musicnn_profile \
      [--wav_dir=data/nsynth-demo/nsynth-test/audio] [--batch_sizes=1,64]
      [--seconds=3]

Times, on demo notes already read into memory, each step a record of
musicnn's default representation costs, at each --batch_sizes (1: a served
request; the Beam job's --batch_size: its featurising), in float32 and,
where this CPU runs it, bfloat16 (nsynth_contracts.precision):
  decode        the WAV bytes to a 4 s clip (nsynth_contracts.audio_decoding)
  MFCCs         the MFCC function, XLA-compiled as the Beam job runs it
  log-mel       musicnn's input (its mel spectrogram, rounded, logged)
  timbral       the two timbral convolution blocks (408 filters), with
                their maximum over frequency and normalisation
  temporal      the three temporal blocks (153 filters)
  mid-end       the three mid-end convolutions and the time statistics
Each step is the difference of two whole functions that share every step
before it (the network cut after the step, beside the network cut before
it), so that the figures add up to the whole; the whole is printed too.
Milliseconds per clip, the best of repeated runs over --seconds each.
"""

import glob
import os
import time

import numpy as np
from absl import flags

from nsynth_common import cli
from nsynth_contracts import precision


def _define_flags() -> None:
  flags.DEFINE_string('wav_dir', 'data/nsynth-demo/nsynth-test/audio',
                      'WAV files of 4 s notes.')
  flags.DEFINE_list('batch_sizes', ['1', '64'], 'Clips per call.')
  flags.DEFINE_float('seconds', 3.0, 'Time per figure.', lower_bound=0.1)


def _ms_per_clip(fn, batch: np.ndarray, seconds: float) -> float:
  """The best of repeated calls, in milliseconds per clip."""
  fn(batch)
  best, start = float('inf'), time.perf_counter()
  while time.perf_counter() - start < seconds:
    began = time.perf_counter()
    fn(batch)
    best = min(best, time.perf_counter() - began)
  return 1000 * best / len(batch)


def _cut_networks(arithmetic: str) -> dict:
  """The representation's network cut after each step: {step: function of
  clips}, each a traced function returning NumPy."""
  import keras
  import tensorflow as tf

  from nsynth_common import dataclass_json
  from nsynth_contracts import musicnn_layers
  from nsynth_contracts import musicnn_network
  from nsynth_contracts import musicnn_representation
  params = musicnn_representation.DEFAULT
  weights = params.read_weights()
  waveforms = keras.Input((None,), name='audio')

  def traced(outputs):
    model = keras.Model(waveforms, outputs)
    function = tf.function(lambda c: model(c, training=False))
    return lambda clips: tf.nest.map_structure(lambda t: t.numpy(),
                                               function(clips))
  log_mel = musicnn_layers.MusicnnLogMel(
      dataclass_json.to_json(params.spectrogram_params),
      params.log_gain)(waveforms)
  cut = {'log-mel': traced(log_mel)}
  for layers in (('timbral',), ('timbral', 'temporal')):
    network = musicnn_network.build_network(weights, params.num_mel_bands,
                                            layers, arithmetic)
    cut[layers[-1]] = traced(network(log_mel))
  whole = params.build_model(weights, arithmetic)
  cut['mid-end'] = traced(whole(waveforms))
  return cut


def _profile(clips: np.ndarray, batch_size: int, arithmetic: str,
             wavs: list[bytes], seconds: float) -> dict[str, float]:
  import tensorflow as tf

  from nsynth_contracts import audio_decoding
  from nsynth_contracts import feature_params
  from nsynth_contracts import features
  params = feature_params.DEFAULT_PARAMS
  batch = clips[:batch_size]
  whole = {'decode': _ms_per_clip(
      lambda b: [audio_decoding.decode_clip(w) for w in wavs[:len(b)]],
      batch, seconds)}
  mfcc = tf.function(lambda c: features.waveform_to_mfcc(c, params),
                     jit_compile=True)
  with cli.native_stderr_silenced():   # XLA's compile-time lines
    whole['MFCCs'] = _ms_per_clip(lambda b: mfcc(b).numpy(), batch, seconds)
  for step, function in _cut_networks(arithmetic).items():
    whole[step] = _ms_per_clip(function, batch, seconds)
  return {
      'decode': whole['decode'], 'MFCCs': whole['MFCCs'],
      'log-mel': whole['log-mel'],
      'timbral': whole['timbral'] - whole['log-mel'],
      'temporal': whole['temporal'] - whole['timbral'],
      'mid-end': whole['mid-end'] - whole['temporal'],
      'record (all)': whole['decode'] + whole['MFCCs'] + whole['mid-end'],
  }


def _main(argv: list[str]) -> None:
  cli.no_arguments(argv)
  from nsynth_contracts import audio_decoding
  values = flags.FLAGS
  paths = sorted(glob.glob(os.path.join(values.wav_dir, '*.wav')))
  sizes = [int(b) for b in values.batch_sizes]
  if len(paths) < max(sizes):
    raise cli.UserError(f'--wav_dir {values.wav_dir} has {len(paths)} WAV '
                        f'files; --batch_sizes needs {max(sizes)}')
  wavs = [open(p, 'rb').read() for p in paths[:max(sizes)]]
  clips = np.stack([audio_decoding.decode_clip(w) for w in wavs])
  arithmetics = [precision.FLOAT32]
  if precision.bfloat16_unavailable_reason() is None:
    arithmetics.append(precision.BFLOAT16)
  else:
    print(f'bfloat16 not timed: {precision.bfloat16_unavailable_reason()}')
  columns = {(b, a): _profile(clips, b, a, wavs, values.seconds)
             for b in sizes for a in arithmetics}
  header = ''.join(f' {f"batch {b}, {a}":>20}' for b, a in columns)
  print(f'{"ms per clip":<14}{header}')
  for step in next(iter(columns.values())):
    print(f'{step:<14}' + ''.join(f' {c[step]:20.2f}'
                                  for c in columns.values()))


def main() -> None:
  cli.run(_define_flags, _main, tensorflow=True)


if __name__ == '__main__':
  main()
