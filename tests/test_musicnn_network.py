"""The musicnn embedding contract against its independent references:
librosa for the input, the original musicnn package for the network.

The network's reference, tests/data/musicnn_reference.npz, is musicnn's own
extractor (its TF1 graph and librosa input) on the clips in
tests/data/musicnn/ and on silence, for both models. To regenerate it, run
tests/data/make_musicnn_reference.py in a throwaway virtualenv as its
docstring says (musicnn's graph needs tf-keras, which ours must not have).
"""

import glob
import os

import keras
import librosa
import numpy as np
import pytest
import soundfile
import tensorflow as tf

from nsynth_contracts import feature_params
from nsynth_contracts import musicnn_layers
from nsynth_contracts import musicnn_network
from nsynth_contracts import musicnn_representation
from nsynth_contracts import musicnn_weights
from nsynth_contracts import representation
from nsynth_contracts import representation_kinds
from nsynth_contracts.musicnn_representation import MusicnnRepresentation

DATA = os.path.join(os.path.dirname(__file__), 'data')
REFERENCE = os.path.join(DATA, 'musicnn_reference.npz')
# The network: |ours - musicnn| within this fraction of the layer's largest
# magnitude on the clip (float32 convolutions summed in another order, and
# inputs a float16 step apart; measured: 2.5e-5).
NETWORK_TOLERANCE = 1e-4
# The input: musicnn rounds the mel power to float16, so a float32 STFT that
# differs from librosa's in the 7th digit can land one float16 step away:
# up to 2^-10 relative, 4.2e-4 after log10 (measured: 4.0e-4).
LOG_MEL_TOLERANCE = 1e-3


def _clips() -> dict[str, np.ndarray]:
  """The reference's clips, float32 [64000] as librosa.load reads them."""
  paths = sorted(glob.glob(os.path.join(DATA, 'musicnn', '*.wav')))
  clips = {os.path.basename(p)[:-4]: soundfile.read(p, dtype='float32')[0]
           for p in paths}
  clips['silence'] = np.zeros(64000, np.float32)
  return clips


CLIPS = _clips()


@pytest.fixture(scope='module')
def reference():
  with np.load(REFERENCE) as stored:
    return dict(stored)


@pytest.fixture(scope='module', params=musicnn_representation.MODEL_NAMES)
def model_weights(request):
  return request.param, musicnn_weights.read_weights(request.param)


def _params(model_name: str, **kwargs) -> MusicnnRepresentation:
  return MusicnnRepresentation(model_name=model_name, **kwargs)


def musicnn_input_by_librosa(y: np.ndarray) -> np.ndarray:
  """musicnn's extractor.batch_data, step for step: [frames, 96].

  musicnn ran on NumPy 1, where `10000 * float16_array` is computed in
  float32; NumPy 2 keeps it float16, where loud bins overflow to inf.
  """
  mel = librosa.feature.melspectrogram(y=y, sr=16000, hop_length=256,
                                       n_fft=512, n_mels=96).T
  return np.log10(10000 * mel.astype(np.float16).astype(np.float32) + 1)


def test_the_mel_bands_are_librosas():
  spectrogram = musicnn_representation.DEFAULT.spectrogram_params
  np.testing.assert_allclose(
      feature_params.slaney_mel_matrix(spectrogram).T,
      librosa.filters.mel(sr=16000, n_fft=512, n_mels=96), atol=1e-7)


@pytest.mark.parametrize('jit_compile', [False, True])
def test_log_mel_is_musicnns_librosa_input(jit_compile):
  rng = np.random.default_rng(0)
  clips = {**CLIPS, 'noise': (0.3 * rng.standard_normal(64000)).astype(
      np.float32)}
  log_mel = tf.function(
      lambda x: musicnn_network.log_mel(x, musicnn_representation.DEFAULT),
      jit_compile=jit_compile)
  ours = log_mel(np.stack(list(clips.values()))).numpy()
  assert ours.shape == (len(clips), 251, 96)
  for i, (name, y) in enumerate(clips.items()):
    np.testing.assert_allclose(ours[i], musicnn_input_by_librosa(y),
                               atol=LOG_MEL_TOLERANCE, rtol=0, err_msg=name)


@pytest.mark.parametrize('jit_compile', [False, True])
def test_rounding_to_float16_is_numpys(jit_compile):
  """Exactly NumPy's float16 cast, also compiled: XLA may drop a cast to
  float16 and back as excess precision, and did."""
  rng = np.random.default_rng(0)
  x = np.exp(rng.uniform(np.log(1e-9), np.log(6e4), 100_000))
  f16 = np.float16
  ties = [f16(1.0), f16(1000.0), np.finfo(f16).tiny, np.float16(2**-24)]
  exact = [0.0, 2**-25, 65504.0, *ties]
  # Exactly halfway between neighbours, both ways, and just beside them.
  halves = [float(t) + float(np.spacing(t)) / 2 for t in ties]
  x = np.concatenate([x, exact, halves, np.nextafter(halves, 0),
                      np.nextafter(halves, 1)]).astype(np.float32)
  rounded = tf.function(musicnn_layers.round_to_float16,
                        jit_compile=jit_compile)(x).numpy()
  np.testing.assert_array_equal(rounded, x.astype(np.float16).astype(
      np.float32))


def test_log_mel_saturates_instead_of_overflowing_float16():
  t = np.arange(64000) / 16000.0
  deafening = (1000.0 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
  log_mel = musicnn_network.log_mel(
      deafening[np.newaxis], musicnn_representation.DEFAULT).numpy()
  assert np.all(np.isfinite(log_mel))
  # The loudest bins sit at the largest float16, not beyond.
  assert log_mel.max() == pytest.approx(np.log10(10000 * 65504.0 + 1),
                                        rel=1e-6)


def _close_to_musicnn(ours, theirs, what):
  scale = np.abs(theirs).max()
  np.testing.assert_allclose(ours, theirs, rtol=0,
                             atol=NETWORK_TOLERANCE * max(scale, 1e-3),
                             err_msg=what)


def test_every_layer_matches_the_musicnn_package(model_weights, reference):
  model_name, weights = model_weights
  # The reference holds musicnn's own pooling: mean and max over time.
  model = musicnn_network.build_all_layers_model(
      weights, _params(model_name, time_statistics=('mean', 'max')))
  names = list(CLIPS)
  outputs = model(np.stack(list(CLIPS.values())))
  for layer in musicnn_representation.LAYER_WIDTHS:
    for i, name in enumerate(names):
      key = f'{model_name}/{name}/{layer}'
      if layer in musicnn_representation.FRAME_LAYER_WIDTHS:
        theirs = np.concatenate([reference[f'{key}_mean'],
                                 reference[f'{key}_max']])
      else:
        theirs = reference[key]
      _close_to_musicnn(outputs[layer][i].numpy(), theirs, key)


def test_frames_at_the_edges_and_middle_match_the_musicnn_package(
    model_weights, reference):
  """The per-frame maps, where zero padding in time matters most."""
  model_name, weights = model_weights
  network = musicnn_network.build_network(weights)
  frames = reference['frames']
  names = list(CLIPS)
  maps = network(musicnn_network.log_mel(np.stack(list(CLIPS.values())),
                                         musicnn_representation.DEFAULT))
  for layer in ('timbral', 'temporal', 'cnn1', 'cnn2', 'cnn3'):
    for i, name in enumerate(names):
      key = f'{model_name}/{name}/{layer}_frames'
      _close_to_musicnn(maps[layer][i].numpy()[frames], reference[key], key)


def test_the_layer_widths_stated_in_the_params_are_the_networks(
    model_weights):
  _, weights = model_weights
  network = musicnn_network.build_network(weights)
  maps = network(np.zeros((1, 40, 96), np.float32))
  for layer, width in musicnn_representation.FRAME_LAYER_WIDTHS.items():
    assert tuple(maps[layer].shape) == (1, 40, width), layer
  for layer, width in musicnn_representation.CLIP_LAYER_WIDTHS.items():
    assert tuple(maps[layer].shape) == (1, width), layer


@pytest.fixture(scope='module')
def default_model():
  params = musicnn_representation.DEFAULT
  weights = musicnn_weights.read_weights(params.model_name)
  return musicnn_network.build_embedding_model(weights, params), weights


def test_the_embedding_is_the_chosen_layer_pooled(default_model):
  model, weights = default_model
  params = musicnn_representation.DEFAULT
  batch = np.stack(list(CLIPS.values()))
  every_layer = musicnn_network.build_all_layers_model(weights, params)(batch)
  out = model(batch).numpy()
  assert out.shape == (len(CLIPS), params.size)
  np.testing.assert_allclose(out, every_layer[params.layer].numpy(),
                             atol=1e-6)


def test_only_the_layers_the_embedding_needs_are_run(model_weights):
  """The temporal maps need none of the timbral convolutions, which are
  most of the network's multiply-adds (measured on 2 cores, batch 32:
  6.5 ms per clip instead of 22)."""
  _, weights = model_weights
  network = musicnn_network.build_network(weights, layers=('temporal',))
  names = {layer.name for layer in network.layers}
  assert 'temporal_128' in names
  assert not {'timbral_7x38', 'cnn1_conv', 'tags_dense'} & names


def test_silence_gives_finite_values(default_model):
  model, _ = default_model
  out = model(np.zeros((2, 64000), np.float32)).numpy()
  assert np.all(np.isfinite(out))
  # Not bit-equal: the convolutions may sum a batch's rows in another order.
  np.testing.assert_allclose(out[0], out[1], atol=1e-5)


def test_a_batch_equals_clips_one_at_a_time(default_model):
  model, _ = default_model
  batch = np.stack(list(CLIPS.values()))
  together = model(batch).numpy()
  for i in range(len(batch)):
    alone = model(batch[i:i + 1]).numpy()[0]
    np.testing.assert_allclose(together[i], alone, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize('num_samples', [8000, 48000, 80000])
def test_other_lengths_are_padded_or_trimmed_to_four_seconds(
    default_model, num_samples):
  model, _ = default_model
  rng = np.random.default_rng(num_samples)
  y = (0.3 * rng.standard_normal(num_samples)).astype(np.float32)
  clip = np.zeros(64000, np.float32)
  clip[:min(num_samples, 64000)] = y[:64000]
  np.testing.assert_allclose(model(y[np.newaxis]).numpy(),
                             model(clip[np.newaxis]).numpy(), atol=1e-4)


def test_training_mode_changes_nothing(default_model):
  """Frozen: a head trained on top cannot move the moving statistics or
  switch batch normalisation to batch statistics."""
  model, _ = default_model
  batch = np.stack(list(CLIPS.values()))
  np.testing.assert_allclose(model(batch, training=True).numpy(),
                             model(batch).numpy(), atol=1e-6)
  assert not model.trainable_weights


def test_survives_keras_save_and_load(default_model, tmp_path):
  model, _ = default_model
  path = str(tmp_path / 'embedding.keras')
  model.save(path)
  loaded = keras.saving.load_model(path)
  batch = np.stack(list(CLIPS.values()))[:2]
  np.testing.assert_allclose(loaded(batch).numpy(), model(batch).numpy(),
                             atol=1e-6)


def test_jit_compiled_gives_the_same_embedding(default_model):
  model, _ = default_model
  batch = np.stack(list(CLIPS.values()))
  compiled = tf.function(model, jit_compile=True)
  np.testing.assert_allclose(compiled(batch).numpy(), model(batch).numpy(),
                             rtol=1e-4, atol=1e-3)


def test_the_weights_are_the_networks_variables_only():
  weights = musicnn_weights.read_weights('MTT_musicnn')
  assert not [name for name in weights if 'Adam' in name or 'power' in name]
  assert weights['conv2d/kernel'].shape == (7, 38, 1, 204)
  # Every variable feeds a layer, and every layer finds its variables.
  used = [name for names in musicnn_weights.CHECKPOINT_NAMES.values()
          for name in names]
  assert sorted(used) == sorted(weights)
  assert musicnn_weights.size_bytes(weights) == 4 * sum(
      w.size for w in weights.values())


def test_the_checksum_names_the_values():
  weights = musicnn_weights.read_weights('MTT_musicnn')
  digest = representation.weights_sha256(weights)
  assert digest == representation.weights_sha256(
      {name: weights[name].copy() for name in reversed(list(weights))})
  changed = dict(weights)
  changed['dense_1/bias'] = weights['dense_1/bias'] + np.float32(1e-6)
  assert representation.weights_sha256(changed) != digest
  other = musicnn_weights.read_weights('MSD_musicnn')
  assert representation.weights_sha256(other) != digest


def test_a_missing_wheel_is_one_line_saying_how_to_install_it(monkeypatch):
  monkeypatch.setattr(musicnn_weights.importlib.util, 'find_spec',
                      lambda name: None)
  with pytest.raises(musicnn_weights.MusicnnWeightsError,
                     match='pip install --no-deps musicnn==0.1.0'):
    musicnn_weights.read_weights('MTT_musicnn')


def test_an_unreadable_checkpoint_names_its_prefix(tmp_path):
  (tmp_path / '.index').write_bytes(b'not a checkpoint')
  with pytest.raises(musicnn_weights.MusicnnWeightsError,
                     match=f'MTT_musicnn checkpoint at {tmp_path}'):
    musicnn_weights.read_weights('MTT_musicnn', prefix=f'{tmp_path}/')


def test_weights_that_lack_a_variable_name_it():
  weights = musicnn_weights.read_weights('MTT_musicnn')
  del weights['batch_normalization_7/moving_variance']
  with pytest.raises(musicnn_weights.MusicnnWeightsError,
                     match='batch_normalization_7/moving_variance'):
    musicnn_network.build_network(weights)


def test_params_describe_one_musicnn_patch_per_clip():
  params = MusicnnRepresentation(model_name='MTT_musicnn', layer='midend')
  assert params.clip_samples == 64000
  assert params.num_frames == 251
  assert params.size == 4 * 753   # four statistics over time
  assert MusicnnRepresentation(layer='penultimate').size == 200
  assert representation_kinds.from_json(params.to_json()) == params


@pytest.mark.parametrize('fields, named', [
    ({'model_name': 'MTT_vgg'}, 'model_name'),
    ({'layer': 'pool5'}, 'layer'),
    ({'hop_seconds': 1}, 'hop_seconds'),
])
def test_params_refuse_what_we_cannot_compute(fields, named):
  with pytest.raises(representation.RepresentationError, match=named):
    MusicnnRepresentation.from_params(fields)


@pytest.mark.slow
def test_exports_to_a_saved_model_of_core_ops_only(default_model, tmp_path):
  """What TF Serving's standard binary can load: no tensorflow-io or
  py_function op anywhere in the graph, and the reloaded copy agrees."""
  from tensorflow.core.protobuf import saved_model_pb2
  from tensorflow.python.framework import op_def_registry
  model, _ = default_model
  model.export(str(tmp_path), verbose=False)
  saved = saved_model_pb2.SavedModel()
  saved.ParseFromString((tmp_path / 'saved_model.pb').read_bytes())
  ops = set()
  for graph in saved.meta_graphs:
    ops |= {node.op for node in graph.graph_def.node}
    for function in graph.graph_def.library.function:
      ops |= {node.op for node in function.node_def}
  assert 'RFFT' in ops
  assert not [op for op in ops if op_def_registry.get(op) is None]
  assert not {'PyFunc', 'EagerPyFunc'} & ops
  batch = np.stack(list(CLIPS.values()))
  reloaded = tf.saved_model.load(str(tmp_path))
  expected = model(batch).numpy()
  # The mid-end's statistics reach tens: a few float32 steps of the largest.
  np.testing.assert_allclose(reloaded.serve(batch), expected,
                             atol=1e-6 * np.abs(expected).max())


def test_time_statistics_are_numpys_over_time():
  maps = np.random.default_rng(5).standard_normal((3, 251, 7)).astype(
      np.float32)
  statistics = ('mean', 'max', 'std', 'mean_abs_delta')
  got = musicnn_layers.TimeStatistics(statistics)(maps).numpy()
  expected = np.concatenate([
      maps.mean(1), maps.max(1), maps.std(1),
      np.abs(np.diff(maps, axis=1)).mean(1)], axis=-1)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
  params = MusicnnRepresentation(layer='temporal', time_statistics=statistics)
  assert params.size == 4 * 153
  assert representation_kinds.from_json(params.to_json()) == params
  with pytest.raises(representation.RepresentationError,
                     match='time_statistics'):
    MusicnnRepresentation(time_statistics=('median',))
