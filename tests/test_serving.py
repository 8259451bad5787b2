"""The export: no train/serve skew, core ops only, loadable like TF Serving."""

import glob
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent import futures

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc
from tensorflow_serving.config import model_server_config_pb2

from beam_pipelines import nsynth_tfrecords
from nsynth_contracts import manifest as manifest_lib
from nsynth_contracts import precision
from nsynth_contracts import schema
from nsynth_contracts import window_params
from serving import export_check
from serving import exporter
from serving import signatures
from serving import tf_serving
from serving import warmup
from tests.conftest import float_wav_bytes
from tests.conftest import wav_bytes
from tests.rest_stand_in import LocalHttpServer
from tests.rest_stand_in import columnar_outputs
from tests.rest_stand_in import decoded_b64
from trainer import job_layout
from trainer import layers
from trainer import models
from trainer import recipes
from trainer import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def trained_job(default_tfrecords, tmp_path_factory):
  """A job directory of the trainer's default model on the default
  features."""
  job_dir = tmp_path_factory.mktemp('job')
  train.train(train.TrainConfig(
      data_dir=str(default_tfrecords), job_dir=str(job_dir), epochs=2,
      batch_size=16, eval_splits=('valid',)))
  return job_dir


@pytest.fixture(scope='module')
def exported(trained_job, default_tfrecords, tmp_path_factory):
  """The trainer's own export of its default model on the default features:
  (export dir, Keras model, manifest)."""
  job_dir = trained_job
  path = exporter.export_job(str(job_dir), str(tmp_path_factory.mktemp('export')))
  model = models.load(job_layout.best_model_path(str(job_dir)))
  return path, model, manifest_lib.read(str(default_tfrecords))


@pytest.fixture(scope='module')
def loaded(exported):
  return tf.saved_model.load(exported[0])


def nsynth_tfrecords_manifest(dataset_dir) -> manifest_lib.Manifest:
  return manifest_lib.read(str(dataset_dir))


def test_signature_on_raw_audio_equals_the_model_on_beam_features(
    exported, loaded, tiny_demo, tmp_path):
  """No train/serve skew: Beam's features + Keras == the export on audio."""
  _, model, manifest = exported
  out = nsynth_tfrecords.run([f'--input={tiny_demo / "nsynth-valid"}',
                              f'--output_dir={tmp_path / "with_audio"}',
                              '--keep_audio',
                              f'--num_mfcc={manifest.feature_params.num_mfcc}'
                              ]).dataset_dir
  files = sorted(glob.glob(f'{out}/valid-*.tfrecord.gz'))
  records = tf.data.TFRecordDataset(files, compression_type='GZIP').batch(64)
  parsed = schema.parse_batch(next(iter(records)), manifest.mfcc_shape,
                              manifest.feature_params.clip_samples,
                              manifest.representation_sizes)
  # A note below the silence threshold (the demo renders a few digitally
  # silent ones) is answered no sound; every other gets the model's answer.
  heard = np.sqrt(np.mean(parsed[schema.AUDIO].numpy().astype(np.float64) ** 2,
                          axis=1)) >= 10 ** (-60 / 20)
  # The default model reads the representation the Beam job wrote.
  assert layers.input_names(model) == tuple(manifest.representation_sizes)
  from_features = np.where(heard[:, np.newaxis], model(
      layers.member_inputs(model, parsed), training=False).numpy(), 0.0)
  # The signature that computes as the Beam job's workers did: float32, or
  # its bfloat16 twin where this CPU has bfloat16 (the manifest says).
  (arithmetic,) = nsynth_tfrecords_manifest(out).representation_precision
  served = loaded.signatures[signatures.in_precision(
      signatures.AUDIO_SIGNATURE, arithmetic)](audio=parsed[schema.AUDIO])
  np.testing.assert_allclose(served[signatures.PROBABILITIES].numpy(),
                             from_features, atol=1e-5)
  families = [manifest.vocabulary.family(i) if h else '(no sound)'
              for i, h in zip(from_features.argmax(axis=1), heard)]
  assert [f.decode() for f in served[signatures.FAMILY].numpy()] == families
  assert served[signatures.CLASSES].numpy()[0].tolist() == [
      f.encode() for f in manifest.vocabulary.families]


def test_wav_signature_decodes_like_the_beam_job(exported, loaded, tiny_demo):
  path = sorted(glob.glob(str(tiny_demo / 'nsynth-test' / 'audio' /
                              '*.wav')))[0]
  data = open(path, 'rb').read()
  by_wav = loaded.signatures[signatures.WAV_SIGNATURE](wav=tf.constant([data]))
  from nsynth_contracts import audio_decoding
  clip = audio_decoding.decode_clip(data)
  by_audio = loaded.signatures[signatures.AUDIO_SIGNATURE](
      audio=tf.constant(clip[np.newaxis]))
  np.testing.assert_allclose(by_wav[signatures.PROBABILITIES].numpy(),
                             by_audio[signatures.PROBABILITIES].numpy(),
                             atol=1e-6)


@pytest.mark.parametrize('audio,message', [
    (np.zeros((1, 0), np.float32), 'audio is empty'),
    (np.zeros((0, 64000), np.float32), 'audio is empty'),
    (np.array([[0.1, np.nan, 0.2]], np.float32), 'NaN or Inf'),
    (np.array([[0.1, np.inf]], np.float32), 'NaN or Inf'),
    (np.zeros((1, 100), np.int32), 'expected to be a float tensor'),
    (np.zeros((100,), np.float32),
     r'audio must be float32 \(batch, samples\): this request has another'),
    (np.zeros((1, 2, 100), np.float32), 'this request has another rank'),
    (np.full((1, 64000), 1e19, np.float32), 'must lie within -1..1'),
    (np.full((2, 100), -5.0, np.float32), 'must lie within -1..1'),
])
def test_bad_audio_requests_get_invalid_argument(loaded, audio, message):
  with pytest.raises(tf.errors.InvalidArgumentError, match=message):
    loaded.signatures[signatures.AUDIO_SIGNATURE](audio=tf.constant(audio))


def _check_answers(outputs, batch, families, silent=()):
  """Every output of a signature is finite and means something: a family,
  or for the `silent` rows no sound."""
  probabilities = outputs[signatures.PROBABILITIES].numpy()
  assert probabilities.shape == (batch, len(families))
  assert np.all(np.isfinite(probabilities))
  heard = np.array([i not in silent for i in range(batch)])
  np.testing.assert_allclose(probabilities.sum(axis=1), heard * 1.0,
                             atol=1e-5)
  class_id = outputs[signatures.CLASS_ID].numpy()
  np.testing.assert_array_equal(
      class_id, np.where(heard, probabilities.argmax(axis=1), -1))
  assert [f.decode() for f in outputs[signatures.FAMILY].numpy()] == [
      families[i] if i >= 0 else '(no sound)' for i in class_id]
  assert outputs[signatures.CLASSES].numpy().tolist() == [
      [f.encode() for f in families]] * batch


def test_extreme_but_valid_input_gets_finite_meaningful_answers(exported,
                                                                loaded):
  _, _, manifest = exported
  families = list(manifest.vocabulary.families)
  t = np.arange(64000) / 16000.0
  extreme = np.stack([
      np.full(64000, 4.0),                 # the accepted limit, as DC
      np.sign(np.sin(2 * np.pi * 50 * t)) * 4.0,           # square at the limit
      np.full(64000, 1e-38),                               # denormal-small
      np.zeros(64000),                                     # silence
      np.where(np.arange(64000) % 2, 1.0, -1.0),           # Nyquist full scale
  ]).astype(np.float32)
  # A constant is DC, no sound however large; the denormal-small clip and
  # silence are below the silence threshold.
  _check_answers(loaded.signatures[signatures.AUDIO_SIGNATURE](
      audio=tf.constant(extreme)), len(extreme), families, silent=(0, 2, 3))
  loudest = [wav_bytes(np.clip(c, -1, 1)) for c in extreme]
  _check_answers(loaded.signatures[signatures.WAV_SIGNATURE](
      wav=tf.constant(loudest)), len(extreme), families, silent=(0, 2, 3))


@pytest.mark.parametrize('wav,message', [
    (np.array([], dtype=object), 'the request holds no WAV files'),
    (np.array([[b'RIFF']], dtype=object), 'this request has another rank'),
])
def test_empty_and_misshapen_wav_batches_are_refused_in_our_words(
    loaded, wav, message):
  with pytest.raises(tf.errors.InvalidArgumentError, match=message):
    loaded.signatures[signatures.WAV_SIGNATURE](
        wav=tf.constant(wav, dtype=tf.string))


@pytest.mark.parametrize('data,message', [
    (b'\x00\x01garbage that is not a wav file at all',
     'not a WAV, FLAC, OGG or MP3 file'),
    (b'', 'the file is empty'),
    (wav_bytes(np.zeros(44100), sample_rate=44100), 'must be 16000 Hz'),
    (float_wav_bytes(np.zeros(16000)),
     '32-bit float WAV: serving_wav decodes 16-bit PCM only'),
    (wav_bytes(np.zeros(0)), 'holds no samples'),
])
def test_bad_wav_requests_get_invalid_argument(loaded, data, message):
  with pytest.raises(tf.errors.InvalidArgumentError, match=message):
    loaded.signatures[signatures.WAV_SIGNATURE](wav=tf.constant([data]))


def test_any_length_is_padded_or_trimmed_as_the_beam_job_does(loaded):
  rng = np.random.default_rng(0)
  long_clip = (0.2 * rng.standard_normal((1, 80000))).astype(np.float32)
  short = loaded.signatures[signatures.AUDIO_SIGNATURE](
      audio=tf.constant(long_clip[:, :64000]))
  longer = loaded.signatures[signatures.AUDIO_SIGNATURE](
      audio=tf.constant(long_clip))
  np.testing.assert_allclose(short[signatures.PROBABILITIES].numpy(),
                             longer[signatures.PROBABILITIES].numpy())


def test_every_op_is_in_tensorflows_core_registry(exported):
  """In a process that never imports tensorflow-io, as TF Serving's binary."""
  script = f'''
import sys
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry
model = saved_model_pb2.SavedModel()
model.ParseFromString(open({os.path.join(exported[0], "saved_model.pb")!r}, "rb").read())
ops = set()
for meta_graph in model.meta_graphs:
  ops.update(node.op for node in meta_graph.graph_def.node)
  for function in meta_graph.graph_def.library.function:
    ops.update(node.op for node in function.node_def)
missing = sorted(op for op in ops if op_def_registry.get(op) is None)
assert "tensorflow_io" not in sys.modules
print(len(ops), "ops; missing:", missing)
sys.exit(1 if missing else 0)
'''
  result = subprocess.run([sys.executable, '-c', script], capture_output=True,
                          text=True, timeout=300)
  assert result.returncode == 0, result.stdout + result.stderr[-2000:]
  assert 'missing: []' in result.stdout
  assert int(result.stdout.split()[0]) > 20


def test_saved_model_cli_lists_both_signatures(exported):
  cli = os.path.join(os.path.dirname(sys.executable), 'saved_model_cli')
  result = subprocess.run([cli, 'show', '--dir', exported[0], '--all'],
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  for expected in ("signature_def['serving_default']",
                   "signature_def['serving_wav']", "inputs['audio']",
                   "inputs['wav']", "outputs['probabilities']",
                   "outputs['family']", "outputs['class_id']",
                   'tensorflow/serving/predict'):
    assert expected in result.stdout


def test_warmup_records_parse_and_the_signatures_accept_them(exported,
                                                             loaded):
  path = os.path.join(exported[0], 'assets.extra', warmup.WARMUP_FILE)
  logs = warmup.read(path)
  assert 0 < len(logs) <= warmup.MAX_RECORDS
  used = set()
  for log in logs:
    request = log.predict_log.request
    assert request.model_spec.name == 'nsynth_instrument'
    inputs = {k: tf.constant(tf.make_ndarray(v))
              for k, v in request.inputs.items()}
    name = request.model_spec.signature_name
    outputs = loaded.signatures[name](**inputs)
    if name in (signatures.AUDIO_SIGNATURE, signatures.WAV_SIGNATURE):
      assert outputs[signatures.PROBABILITIES].shape[0] == \
          next(iter(inputs.values())).shape[0]
    else:  # A recording: windows every 2 s over 3 clips of 4 s.
      assert outputs[signatures.WINDOW_START_SECONDS].numpy().tolist()[:3] == [
          0.0, 2.0, 4.0]
    used.add(name)
  assert used == {signatures.AUDIO_SIGNATURE, signatures.WAV_SIGNATURE,
                  signatures.LONG_AUDIO_SIGNATURE,
                  signatures.LONG_WAV_SIGNATURE}


def test_the_export_carries_the_contract_of_its_data(exported, loaded):
  _, _, manifest = exported
  contract = signatures.read_contract(loaded, exported[0])
  assert contract.feature_params == manifest.feature_params
  assert contract.vocabulary == manifest.vocabulary
  assert contract.windows == window_params.DEFAULT_WINDOWS


@pytest.mark.parametrize('encoding,subtype', [
    ('pcm8', 'PCM_U8'), ('pcm16', 'PCM_16'), ('pcm24', 'PCM_24'),
    ('pcm32', 'PCM_32'), ('float32', 'FLOAT'), ('float64', 'DOUBLE')])
def test_the_contract_names_exactly_the_wav_encodings_the_graph_decodes(
    loaded, encoding, subtype):
  import io

  import soundfile
  contract = signatures.read_contract(loaded, 'the export')
  rate = contract.feature_params.sample_rate_hz
  buffer = io.BytesIO()
  soundfile.write(buffer, 0.3 * np.sin(np.arange(rate) / 4.0), rate,
                  subtype=subtype, format='WAV')
  try:
    loaded.signatures[signatures.WAV_SIGNATURE](
        wav=tf.constant([buffer.getvalue()]))
    decoded = True
  except tf.errors.InvalidArgumentError as e:
    assert 'decodes 16-bit PCM only' in e.message
    decoded = False
  assert decoded == contract.accepts_wav(encoding, rate)


def test_versions_only_grow_and_are_never_overwritten(exported, tmp_path):
  # Versioning does not depend on the model: an MFCC-only one exports in
  # seconds, where the default carries the embedding network.
  manifest = exported[2]
  model = recipes.build('stats_mlp', manifest)
  base = tmp_path / 'exports'
  first = exporter.export_model(model, manifest, str(base))
  stamp = os.path.getmtime(os.path.join(first, 'saved_model.pb'))
  (base / 'nsynth_instrument' / 'v7').mkdir()   # ignored, as TF Serving does
  second = exporter.export_model(model, manifest, str(base))
  assert [os.path.basename(first), os.path.basename(second)] == ['1', '2']
  assert os.path.getmtime(os.path.join(first, 'saved_model.pb')) == stamp
  assert not glob.glob(str(base / 'nsynth_instrument' / '.staging-*'))
  config = exporter.models_config('nsynth_instrument', '/models/nsynth')
  parsed = text_format.Parse(config, model_server_config_pb2.ModelServerConfig())
  (model,) = parsed.model_config_list.config
  assert (model.name, model.base_path, model.model_platform) == (
      'nsynth_instrument', '/models/nsynth', 'tensorflow')


@pytest.mark.parametrize('name', ['..', '.', '../escape', 'a/b', '/abs', '',
                                  '.hidden', 'with space', 'back\\slash'])
def test_model_names_tf_serving_cannot_serve_are_refused(exported, tmp_path,
                                                         name):
  _, model, manifest = exported
  base = tmp_path / 'exports'
  with pytest.raises(exporter.ExportError, match='must be a plain name'):
    exporter.export_model(model, manifest, str(base), name)
  assert not tmp_path.joinpath('escape').exists()
  assert not base.exists() or not any(base.rglob('saved_model.pb'))


def test_export_command_refuses_dot_dot_in_one_line(exported, tmp_path):
  result = subprocess.run(
      [sys.executable, '-m', 'serving.export', f'--job_dir={tmp_path}',
       f'--export_base={tmp_path / "exports"}', '--model_name=..'],
      cwd=REPO, capture_output=True, text=True, timeout=120)
  assert result.returncode == 1
  (line,) = result.stderr.strip().splitlines()
  assert line.startswith('error: flag --model_name=..: --model_name must be')
  assert not (tmp_path / 'exports').exists()


def _compile_cpp_loader(tmp_path):
  compiler = shutil.which('g++')
  tf_dir = os.path.dirname(tf.__file__)
  header = os.path.join(tf_dir, 'include', 'tensorflow', 'cc', 'saved_model',
                        'loader.h')
  if compiler is None:
    pytest.skip('g++ is not installed: the C++ loader test cannot run')
  if not os.path.exists(header):
    pytest.skip(f'{header} is missing from the tensorflow wheel')
  binary = tmp_path / 'run_saved_model'
  result = subprocess.run(
      [compiler, '-std=c++17', '-O1', '-D_GLIBCXX_USE_CXX11_ABI=1',
       '-DEIGEN_MAX_ALIGN_BYTES=64', f'-I{os.path.join(tf_dir, "include")}',
       os.path.join(REPO, 'serving', 'cpp', 'run_saved_model.cc'),
       '-o', str(binary), f'-L{tf_dir}',
       # Since TensorFlow 2.20 the loader's symbols resolve from the
       # framework library alone, so the linker would drop libtensorflow_cc,
       # and with it the static registration of the DirectSession that
       # LoadSavedModel needs ("No session factory registered").
       '-Wl,--no-as-needed', '-l:libtensorflow_cc.so.2',
       '-l:libtensorflow_framework.so.2', f'-Wl,-rpath,{tf_dir}'],
      capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  return binary


@pytest.fixture(scope='module')
def cpp_loader(tmp_path_factory):
  return _compile_cpp_loader(tmp_path_factory.mktemp('cpp'))


def run_cpp(binary, *args):
  """Runs the C++ loader; returns (exit status, {output key: values})."""
  result = subprocess.run([str(binary), *map(str, args)], capture_output=True,
                          text=True, timeout=300)
  lines = dict(line.split(' ', 1) if ' ' in line else (line, '')
               for line in result.stdout.splitlines())
  return result.returncode, lines, result.stderr


def test_cpp_loadsavedmodel_runs_the_export_and_agrees_with_python(
    exported, loaded, tiny_demo, cpp_loader):
  path = sorted(glob.glob(str(tiny_demo / 'nsynth-valid' / 'audio' /
                              '*.wav')))[0]
  code, lines, stderr = run_cpp(cpp_loader, exported[0], path)
  assert code == 0, stderr[-3000:]
  cpp_probabilities = np.array(lines['probabilities'].split(), np.float32)
  from nsynth_contracts import audio_decoding
  clip = audio_decoding.decode_clip(open(path, 'rb').read())
  python = loaded.signatures[signatures.AUDIO_SIGNATURE](
      audio=tf.constant(clip[np.newaxis]))
  np.testing.assert_allclose(cpp_probabilities,
                             python[signatures.PROBABILITIES].numpy()[0],
                             atol=1e-5)
  assert lines['family'] == python[signatures.FAMILY].numpy()[0].decode()
  assert lines['probabilities.shape'] == '1 9'


needs_bfloat16 = pytest.mark.skipif(
    precision.bfloat16_unavailable_reason() is not None,
    reason=f'bfloat16 cannot run here: '
    f'{precision.bfloat16_unavailable_reason()}')


def test_every_audio_signature_has_a_bfloat16_twin(loaded):
  for name in signatures.AUDIO_SIGNATURES:
    assert signatures.in_precision(name, 'bfloat16') in loaded.signatures


def _test_clips(tiny_demo) -> tuple[list[str], np.ndarray]:
  from nsynth_contracts import audio_decoding
  paths = sorted(glob.glob(str(tiny_demo / 'nsynth-test' / 'audio' /
                               '*.wav')))
  return paths, np.stack([audio_decoding.decode_clip(open(p, 'rb').read())
                          for p in paths])


@needs_bfloat16
def test_the_bfloat16_twins_agree_with_float32_on_the_test_notes(
    loaded, tiny_demo):
  _, clips = _test_clips(tiny_demo)
  exact, fast = (loaded.signatures[signatures.in_precision(
      signatures.AUDIO_SIGNATURE, arithmetic)](audio=tf.constant(clips))
                 for arithmetic in ('float32', 'bfloat16'))
  exact_p = exact[signatures.PROBABILITIES].numpy()
  fast_p = fast[signatures.PROBABILITIES].numpy()
  assert not np.array_equal(exact_p, fast_p)
  same_family = np.mean(exact[signatures.FAMILY].numpy() ==
                        fast[signatures.FAMILY].numpy())
  assert same_family >= 0.995, same_family
  assert np.abs(exact_p - fast_p).max() <= (
      export_check.BFLOAT16_PROBABILITY_TOLERANCE)


@needs_bfloat16
def test_cpp_loadsavedmodel_runs_the_bfloat16_twin_within_its_tolerance(
    exported, loaded, tiny_demo, cpp_loader):
  paths, clips = _test_clips(tiny_demo)
  expected = loaded.signatures[signatures.AUDIO_SIGNATURE](
      audio=tf.constant(clips[:1]))[signatures.PROBABILITIES].numpy()[0]
  code, lines, stderr = run_cpp(cpp_loader, exported[0], paths[0],
                                signatures.in_precision(
                                    signatures.AUDIO_SIGNATURE, 'bfloat16'))
  assert code == 0, stderr[-3000:]
  answer = np.array(lines['probabilities'].split(), np.float32)
  assert np.abs(answer - expected).max() <= (
      export_check.BFLOAT16_PROBABILITY_TOLERANCE)


@pytest.mark.parametrize('shape,message', [
    ('64000', 'audio must be float32 (batch, samples): this request has '
     'another rank'),
    ('1,2,64000', 'this request has another rank'),
    ('0,64000', 'audio is empty'),
    ('2,0', 'audio is empty'),
])
def test_bad_shapes_fed_as_tf_serving_feeds_them_are_refused_in_our_words(
    exported, cpp_loader, shape, message):
  """TF Serving runs the signature through Session::Run, which does not check
  a fed tensor against the signature: the graph itself must."""
  code, lines, stderr = run_cpp(cpp_loader, exported[0], f'--zeros={shape}')
  assert code == 3, stderr[-2000:]
  # Our words alone on the status's first line, in an assertion's frame;
  # TensorFlow adds only the node's name on the next.
  assert lines['status'].startswith('INVALID_ARGUMENT: assertion failed: [')
  assert lines['status'].endswith(']')
  assert message in lines['status']
  assert 'Tensor had' not in lines['status']


def test_float64_audio_is_refused_before_the_graph_in_tensorflows_words(
    exported, cpp_loader):
  """A signature's input has one dtype, and Session::Run refuses another
  before any op of ours runs, so no check of the graph can word it: TF
  Serving answers a gRPC request of DT_DOUBLE audio with TensorFlow's
  sentence (REST converts JSON numbers to the signature's float32, and
  nsynth-client sends float32 either way). This pins the wording the README
  quotes."""
  code, lines, stderr = run_cpp(cpp_loader, exported[0],
                                '--double_zeros=1,64000')
  assert code == 3, stderr[-2000:]
  assert lines['status'].startswith(
      'INVALID_ARGUMENT: Expects arg[0] to be float but double is provided')


class _SavedModelPredictionService(
    prediction_service_pb2_grpc.PredictionServiceServicer):
  """A PredictionService on tensorflow-serving-api's own servicer class."""

  def __init__(self, loaded_model, model_name):
    self._model = loaded_model
    self._name = model_name

  def Predict(self, request, context):
    if request.model_spec.name != self._name:
      context.abort(grpc.StatusCode.NOT_FOUND,
                    f'Servable not found for request: Latest({request.model_spec.name})')
    signature = self._model.signatures[
        request.model_spec.signature_name or signatures.AUDIO_SIGNATURE]
    inputs = {k: tf.constant(tf.make_ndarray(v))
              for k, v in request.inputs.items()}
    try:
      outputs = signature(**inputs)
    except tf.errors.InvalidArgumentError as e:
      context.abort(grpc.StatusCode.INVALID_ARGUMENT, e.message)
    response = predict_pb2.PredictResponse()
    for key, value in outputs.items():
      response.outputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))
    return response


@pytest.fixture
def grpc_server(loaded):
  server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
  prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
      _SavedModelPredictionService(loaded, 'nsynth_instrument'), server)
  port = server.add_insecure_port('127.0.0.1:0')
  server.start()
  yield port
  server.stop(None)


def test_grpc_client_against_a_prediction_service(grpc_server, loaded,
                                                  tiny_demo):
  paths = sorted(glob.glob(str(tiny_demo / 'nsynth-test' / 'audio' /
                               '*.wav')))[:3]
  contents = [open(p, 'rb').read() for p in paths]
  outputs = tf_serving.predict_grpc('127.0.0.1', grpc_server, 'nsynth_instrument',
                                    contents)
  direct = loaded.signatures[signatures.WAV_SIGNATURE](
      wav=tf.constant(contents))
  np.testing.assert_allclose(outputs[signatures.PROBABILITIES],
                             direct[signatures.PROBABILITIES].numpy())
  with pytest.raises(tf_serving.ServerError,
                     match='INVALID_ARGUMENT: not a WAV, FLAC, OGG or MP3 '
                     'file$'):
    tf_serving.predict_grpc('127.0.0.1', grpc_server, 'nsynth_instrument',
                            [b'junk bytes'])
  with pytest.raises(tf_serving.ServerError, match='NOT_FOUND'):
    tf_serving.predict_grpc('127.0.0.1', grpc_server, 'no_such_model', contents)


def test_rest_client_sends_b64_wav_the_way_tf_serving_reads_it(loaded,
                                                               tiny_demo):
  """Against a stand-in that parses TF Serving's columnar REST format."""
  server = _SignatureServer(loaded)
  try:
    path = sorted(glob.glob(str(tiny_demo / 'nsynth-test' / 'audio' /
                                '*.wav')))[0]
    data = open(path, 'rb').read()
    outputs = tf_serving.predict_rest('127.0.0.1', server.port,
                                      'nsynth_instrument', [data])
    direct = loaded.signatures[signatures.WAV_SIGNATURE](wav=tf.constant([data]))
    np.testing.assert_allclose(outputs[signatures.PROBABILITIES],
                               direct[signatures.PROBABILITIES].numpy(),
                               rtol=1e-6)
    with pytest.raises(tf_serving.ServerError,
                       match='HTTP 400: WAV sample rate must be 16000 Hz'):
      tf_serving.predict_rest('127.0.0.1', server.port, 'nsynth_instrument',
                              [wav_bytes(np.zeros(8000), sample_rate=8000)])
  finally:
    server.close()


def run_predict(*args):
  return subprocess.run([sys.executable, '-m', 'serving.predict', *map(str, args)],
                        cwd=REPO, capture_output=True, text=True, timeout=300)


def test_predict_command_on_a_folder_reports_each_file(exported, tiny_demo,
                                                       tmp_path):
  folder = tmp_path / 'notes'
  folder.mkdir()
  for path in sorted(glob.glob(str(tiny_demo / 'nsynth-test' / 'audio' /
                                   '*.wav')))[:3]:
    shutil.copy(path, folder)
  (folder / 'broken.wav').write_bytes(b'definitely not audio')
  (folder / 'dangling.wav').symlink_to(folder / 'gone.wav')
  (folder / 'a_dir.wav').mkdir()
  result = run_predict(f'--model={os.path.dirname(exported[0])}', '--json',
                       '--batch_size=2', folder, tmp_path / 'missing.wav')
  assert result.returncode == 1  # Some files could not be predicted.
  rows = {os.path.basename(r['file']): r for r in json.loads(result.stdout)}
  assert len(rows) == 6
  assert rows['broken.wav']['error'] == 'not a WAV, FLAC, OGG or MP3 file'
  assert rows['dangling.wav']['error'] == (
      'a link to a file that does not exist')
  assert rows['missing.wav']['error'] == 'file does not exist'
  assert 'a_dir.wav' not in rows  # os.walk lists it as a directory
  good = [r for r in rows.values() if 'error' not in r]
  assert len(good) == 3
  for row in good:
    assert row['family'] == row['top'][0]['family']
    assert len(row['top']) == 3
  assert '3 of 6 files could not be predicted' in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize('make_model_path,message', [
    (lambda tmp: tmp / 'nowhere', 'does not exist'),
    (lambda tmp: tmp, 'holds neither saved_model.pb nor a complete integer '
                      'version'),
])
def test_predict_on_a_model_path_without_an_export_is_one_line(
    tmp_path, tiny_demo, make_model_path, message):
  note = sorted(glob.glob(str(tiny_demo / 'nsynth-test' / 'audio' / '*.wav')))[0]
  model_path = make_model_path(tmp_path)
  result = run_predict(f'--model={model_path}', note)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines() == [
      f'error: --model {model_path} {message}' + (
          ' directory' if 'version' in message else '')]


def test_predict_takes_the_newest_version_that_loads_and_names_the_others(
    exported, tiny_demo, tmp_path):
  """A version being copied has no saved_model.pb yet, a damaged one cannot
  be loaded: each is named, and the newest that loads answers. A version
  named 007 is version 7, read under its own name."""
  model_dir = tmp_path / 'model'
  shutil.copytree(exported[0], model_dir / '007')
  shutil.copytree(exported[0], model_dir / '8')
  damaged = model_dir / '8' / 'saved_model.pb'
  damaged.write_bytes(damaged.read_bytes()[:1000])
  shutil.copytree(exported[0], model_dir / '9',
                  ignore=shutil.ignore_patterns('saved_model.pb'))
  note = sorted(glob.glob(str(tiny_demo / 'nsynth-test' / 'audio' /
                              '*.wav')))[0]
  result = run_predict(f'--model={model_dir}', '--json', note)
  assert result.returncode == 0, result.stderr
  [row] = json.loads(result.stdout)
  assert 'error' not in row
  skipped = [line for line in result.stderr.splitlines()
             if line.startswith('Skipped ')]
  assert skipped[0] == (f'Skipped {model_dir / "9"} has no saved_model.pb (an '
                        f'export still being copied, or one that failed)')
  assert skipped[1].startswith(f'Skipped {model_dir / "8"} cannot be loaded (')
  assert len(skipped) == 2 and 'Traceback' not in result.stderr


def _FakeServer(status=200, body=b'{}', delay=0.0,
                answer=None) -> LocalHttpServer:
  """An HTTP server answering every POST: with (status, body) after a delay,
  or with what `answer(path, request body)` returns."""
  def reply(path: str, request: bytes) -> tuple[int, bytes]:
    time.sleep(delay)
    return answer(path, request) if answer else (status, body)
  return LocalHttpServer(reply)


@pytest.mark.parametrize('status,body,delay,message', [
    (200, b'<html>proxy error</html>', 0, 'is not JSON'),
    (200, b'{"predictions": []}', 0, 'holds no outputs object'),
    (200, b'{"outputs": {"probabilities": [[0.5, 0.5]]}}', 0,
     r"lacks the outputs \['classes'\]"),
    (200, json.dumps({'outputs': {
        'probabilities': [[1.0, 0.0]] * 3,
        'classes': [['a', 'b']] * 3}}).encode(), 0,
     "3 rows of 'probabilities' for 1 file"),
    (200, json.dumps({'outputs': {
        'probabilities': [['NaN', 0.0]], 'classes': [['a', 'b']]}}).encode(),
     0, 'not numbers in'),
    (400, b'["a", "list", "as", "error"]', 0, 'HTTP 400: \\["a", "list"'),
    (503, b'', 0, 'HTTP 503'),
    (200, b'{}', 3.0, 'no reply from .* within 0.5 s'),
])
def test_rest_client_turns_every_bad_reply_into_one_readable_error(
    status, body, delay, message):
  server = _FakeServer(status, body, delay)
  try:
    with pytest.raises(tf_serving.ServerError, match=message) as error:
      tf_serving.predict_rest('127.0.0.1', server.port, 'nsynth_instrument',
                              [b'RIFF....WAVE'], timeout=0.5)
    assert '\n' not in str(error.value)
  finally:
    server.close()


def test_rest_client_names_an_unreachable_server():
  (port,) = [p for p in [_unused_port()]]
  with pytest.raises(tf_serving.ServerError, match=f'cannot reach '
                     f'http://127.0.0.1:{port}'):
    tf_serving.predict_rest('127.0.0.1', port, 'm', [b'x'], timeout=2)


def _unused_port():
  import socket
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


@pytest.fixture(scope='module')
def sixty_seconds(tiny_demo, tmp_path_factory):
  """A 60 s recording: demo notes of one test instrument, one after another."""
  paths = sorted(glob.glob(str(tiny_demo / 'nsynth-test' / 'audio' /
                               'guitar_acoustic_*.wav')))
  from nsynth_contracts import audio as audio_lib
  from nsynth_contracts import audio_decoding
  notes = [audio_decoding.decode_clip(open(p, 'rb').read()) for p in paths]
  recording = np.concatenate([notes[i % len(notes)] for i in range(15)])
  path = tmp_path_factory.mktemp('recording') / 'sixty_seconds.wav'
  path.write_bytes(audio_lib.encode_pcm16(recording, 16000))
  stored = audio_decoding.decode(path.read_bytes(), 16000).samples
  return path, stored


def test_a_minute_gets_the_same_answer_from_signature_cli_rest_and_cpp(
    exported, loaded, sixty_seconds, cpp_loader):
  path, recording = sixty_seconds
  direct = loaded.signatures[signatures.LONG_AUDIO_SIGNATURE](
      audio=tf.constant(recording))
  probabilities = direct[signatures.PROBABILITIES].numpy()
  family = direct[signatures.FAMILY].numpy().decode()
  assert direct[signatures.WINDOW_START_SECONDS].numpy().tolist() == [
      float(s) for s in range(0, 57, 2)]
  assert direct[signatures.SOUNDING_WINDOWS].numpy() == 29
  # The WAV twin decodes the same bytes in the graph.
  by_wav = loaded.signatures[signatures.LONG_WAV_SIGNATURE](
      wav=tf.constant(path.read_bytes()))
  np.testing.assert_allclose(by_wav[signatures.PROBABILITIES].numpy(),
                             probabilities, atol=1e-5)
  # The CLI (nsynth_contracts.audio_decoding, the Beam job's decoder), in
  # the arithmetic of the signatures it is compared with.
  result = run_predict(f'--model={os.path.dirname(exported[0])}', '--json',
                       '--timeline', '--precision=float32', path)
  assert result.returncode == 0, result.stderr[-2000:]
  (row,) = json.loads(result.stdout)
  assert row['family'] == family and row['windows'] == 29
  assert row['seconds'] == 60.0
  assert row['top'][0]['probability'] == pytest.approx(
      probabilities.max(), abs=1e-4)
  assert [w['start_seconds'] for w in row['timeline']][:3] == [0.0, 2.0, 4.0]
  # The REST client, against a stand-in that runs the signature.
  server = _SignatureServer(loaded)
  try:
    outputs = tf_serving.predict_rest(
        '127.0.0.1', server.port, 'nsynth_instrument', path.read_bytes(),
        max_windows=signatures.read_contract(loaded, 'the export')
        .max_windows())
  finally:
    server.close()
  np.testing.assert_allclose(outputs[signatures.PROBABILITIES], probabilities,
                             atol=1e-5)
  # The C++ loader, as TF Serving loads and runs it.
  code, lines, stderr = run_cpp(cpp_loader, exported[0], path,
                                signatures.LONG_AUDIO_SIGNATURE)
  assert code == 0, stderr[-3000:]
  np.testing.assert_allclose(np.array(lines['probabilities'].split(),
                                      np.float32), probabilities, atol=1e-5)
  assert lines['family'] == family
  assert lines['window_start_seconds.shape'] == '29'


def test_a_repeated_note_gets_the_notes_answer(loaded, tiny_demo):
  path = sorted(glob.glob(str(tiny_demo / 'nsynth-test' / 'audio' /
                              'keyboard_acoustic_*.wav')))[0]
  from nsynth_contracts import audio_decoding
  note = audio_decoding.decode_clip(open(path, 'rb').read())
  alone = loaded.signatures[signatures.AUDIO_SIGNATURE](
      audio=tf.constant(note[np.newaxis]))
  repeated = loaded.signatures[signatures.LONG_AUDIO_SIGNATURE](
      audio=tf.constant(np.tile(note, 5)))
  assert repeated[signatures.FAMILY].numpy() == \
      alone[signatures.FAMILY].numpy()[0]
  # Windows that start on a repetition are the note itself.
  window_p = repeated[signatures.WINDOW_PROBABILITIES].numpy()
  np.testing.assert_allclose(window_p[0], alone[signatures.PROBABILITIES][0],
                             atol=1e-5)
  np.testing.assert_allclose(window_p[2], window_p[0], atol=1e-5)


@pytest.mark.parametrize('recording', [
    np.zeros(16000 * 30, np.float32),
    np.full(16000 * 10, 1e-5, np.float32),       # -100 dBFS: below -60
])
def test_a_recording_without_sound_gets_no_sound_not_a_guess(loaded,
                                                             recording):
  outputs = loaded.signatures[signatures.LONG_AUDIO_SIGNATURE](
      audio=tf.constant(recording))
  assert outputs[signatures.FAMILY].numpy().decode() == '(no sound)'
  assert outputs[signatures.CLASS_ID].numpy() == -1
  assert outputs[signatures.SOUNDING_WINDOWS].numpy() == 0
  assert not outputs[signatures.PROBABILITIES].numpy().any()


@pytest.mark.parametrize('audio,message', [
    (np.zeros(16000 * 601, np.float32), 'longer than the 600 s'),
    (np.zeros((2, 16000), np.float32), 'one recording: this request has'),
    (np.zeros(0, np.float32), 'audio is empty'),
    (np.full(16000, 7.0, np.float32), 'must lie within -1..1'),
])
def test_long_audio_requests_are_bounded_and_checked(loaded, audio, message):
  with pytest.raises(tf.errors.InvalidArgumentError, match=message):
    loaded.signatures[signatures.LONG_AUDIO_SIGNATURE](audio=tf.constant(audio))


@pytest.mark.parametrize('fmt,subtype,suffix', [
    ('WAV', 'PCM_16', '.wav'), ('FLAC', 'PCM_16', '.flac'),
    ('OGG', 'VORBIS', '.ogg'), ('MP3', 'MPEG_LAYER_III', '.mp3'),
])
def test_users_formats_rates_and_channels_are_decoded(fmt, subtype, suffix,
                                                      tmp_path):
  import soundfile

  from nsynth_contracts import audio_decoding
  t = np.arange(44100 * 6) / 44100.0
  tone = 0.4 * np.sin(2 * np.pi * 1000.0 * t)
  path = tmp_path / f'take{suffix}'
  soundfile.write(str(path), np.stack([tone, tone], 1).astype(np.float32),
                  44100, format=fmt, subtype=subtype)
  decoded = audio_decoding.read_file(str(path), 16000).samples
  assert abs(len(decoded) - 6 * 16000) <= 1600  # MP3 adds codec padding
  spectrum = np.abs(np.fft.rfft(decoded[16000:32000]))
  assert abs(np.argmax(spectrum) - 1000) <= 2      # 1 Hz bins: still 1 kHz
  assert 0.3 < np.max(np.abs(decoded)) < 0.5


def _SignatureServer(loaded_model) -> LocalHttpServer:
  """A REST stand-in that answers with the loaded signatures, as TF
  Serving's columnar format does."""
  def answer(path: str, request: bytes) -> tuple[int, bytes]:
    if path != '/v1/models/nsynth_instrument:predict':
      return 404, json.dumps({'error': f'no model at {path}'}).encode()
    body = json.loads(request)
    value = decoded_b64(body['inputs'][signatures.WAV_INPUT])
    try:
      outputs = loaded_model.signatures[body['signature_name']](
          wav=tf.constant(value))
    except tf.errors.InvalidArgumentError as e:
      return 400, json.dumps({'error': e.message}).encode()
    return 200, json.dumps({'outputs': columnar_outputs(outputs)}).encode()

  return _FakeServer(answer=answer)


def test_predict_plot_draws_a_timeline_quietly_even_over_digital_silence(
    exported, sixty_seconds, tmp_path):
  from nsynth_contracts import audio as audio_lib
  _, recording = sixty_seconds
  with_silence = np.concatenate([np.zeros(16000 * 6, np.float32), recording])
  path = tmp_path / 'late_start.wav'
  path.write_bytes(audio_lib.encode_pcm16(with_silence, 16000))
  plots = tmp_path / 'plots'
  result = run_predict(f'--model={os.path.dirname(exported[0])}',
                       f'--plot={plots}', path)
  assert result.returncode == 0, result.stderr[-2000:]
  png = plots / 'late_start.png'
  assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
  assert f'Timeline of {path}: {png}' in result.stdout + result.stderr
  assert 'Warning' not in result.stderr, result.stderr


def test_export_refuses_damaged_pretrained_weights_in_one_line(
    trained_job, tmp_path, monkeypatch):
  """The checks the Beam job's launcher makes, made again where the export
  builds the network from the installed weights."""
  from nsynth_contracts import musicnn_weights
  real = musicnn_weights.checkpoint_prefix('MTT_musicnn')
  damaged = tmp_path / 'weights' / 'MTT_musicnn'
  damaged.mkdir(parents=True)
  for suffix in ('.index', '.data-00000-of-00001'):
    data = open(real + suffix, 'rb').read()
    (damaged / ('x' + suffix)).write_bytes(
        data[:len(data) // 2] if suffix != '.index' else data)
  monkeypatch.setattr(musicnn_weights, 'checkpoint_prefix',
                      lambda name: str(damaged / 'x'))
  base = tmp_path / 'export'
  with pytest.raises(exporter.ExportError) as error:
    exporter.export_job(str(trained_job), str(base))
  message = str(error.value)
  assert 'cannot read the MTT_musicnn checkpoint at ' in message
  assert str(damaged / 'x') in message and '\n' not in message
  assert not list(base.glob('*/*/saved_model.pb'))
