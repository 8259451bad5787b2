"""The export's contract: what it was made with travels inside it.

Fast: a tiny Keras model and only the signatures under test are exported.
"""

import dataclasses
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from nsynth_contracts import audio_decoding
from nsynth_contracts import feature_params
from nsynth_contracts import labels
from nsynth_contracts import serving_contract
from nsynth_contracts import window_params
from serving import export_check
from serving import signatures
from serving import tf_serving
from tests.conftest import wav_bytes
from tests.rest_stand_in import LocalHttpServer
from tests.rest_stand_in import columnar_outputs
from tests.rest_stand_in import decoded_b64

# Not this project's defaults: whoever reads them from the export must get
# these, and prepare audio for them.
PARAMS = feature_params.FeatureParams(sample_rate_hz=8000, clip_seconds=2.0,
                                      num_mfcc=20)
WINDOWS = window_params.WindowParams(hop_seconds=1.0, max_seconds=30.0)
CONTRACT = serving_contract.ServingContract(
    feature_params=PARAMS, windows=WINDOWS,
    vocabulary=labels.LabelVocabulary(('bass', 'guitar', 'string')),
    wav_encodings=('pcm16',))


def tiny_model(params=PARAMS, classes=3):
  inputs = keras.Input(params.mfcc_shape)
  pooled = keras.layers.GlobalAveragePooling1D()(inputs)
  return keras.Model(inputs, keras.layers.Dense(
      classes, activation='softmax')(pooled))


def export_signatures(path, contract=CONTRACT, names=None):
  """The model's SavedModel with the signatures `names` (default: all)."""
  keras.utils.set_random_seed(0)
  model = tiny_model(contract.feature_params,
                     contract.vocabulary.num_classes)
  archive = keras.export.ExportArchive()
  archive.track(model)
  for name, function in signatures.make_serving_functions(
      model, contract).items():
    if names is None or name in names:
      archive.add_endpoint(name, function)
  archive.write_out(str(path), verbose=False)
  return str(path)


def test_the_contract_survives_json_whole():
  text = CONTRACT.to_json()
  assert serving_contract.ServingContract.from_json(text, 'here') == CONTRACT
  assert json.loads(text)['feature_params']['sample_rate_hz'] == 8000
  assert CONTRACT.max_windows() == 29   # 30 s, windows of 2 s every 1 s


def test_wav_bytes_are_sent_only_in_an_encoding_and_rate_the_graph_decodes():
  assert CONTRACT.accepts_wav('pcm16', 8000)
  assert not CONTRACT.accepts_wav('pcm16', 16000)
  assert not CONTRACT.accepts_wav('float32', 8000)


def _edited(**changes):
  data = json.loads(CONTRACT.to_json())
  for key, value in changes.items():
    section, _, field = key.partition('__')
    if field:
      data[section][field] = value
    elif value is None:
      del data[section]
    else:
      data[section] = value
  return json.dumps(data)


@pytest.mark.parametrize('text,message', [
    ('<html>', 'its contract is not JSON'),
    ('[1, 2]', 'its contract is not a JSON object'),
    (_edited(contract_version=3), 'has version 3; this code reads version 2'),
    (_edited(feature_params=None), 'feature_params is missing'),
    (_edited(feature_params__sample_rate_hz='16k'),
     'feature_params.sample_rate_hz is not an integer'),
    (_edited(feature_params__sample_rate_hz=16000.5),
     'feature_params.sample_rate_hz is not an integer'),
    (_edited(feature_params__sample_rate_hz=10**9), 'is outside 8000..384000'),
    (_edited(window_params__hop_seconds=0), 'hop_seconds must be positive'),
    (_edited(window_params__max_seconds=float('inf')),
     'window_params.max_seconds is not a finite number'),
    (_edited(feature_params__warp_factor=3),
     'feature_params: 1 unknown field (warp_factor)'),
    (_edited(extra_field=1), 'its contract: 1 unknown field (extra_field)'),
    (_edited(feature_params__clip_seconds=1e7), 'clip_seconds is over 60'),
    (_edited(window_params__max_seconds=1e9), 'max_seconds is over 7200'),
    (_edited(window_params__hop_seconds=5.0), 'hop_seconds is longer than a '
                                              'clip'),
    (_edited(window_params__sound_frame_samples=10**8),
     'a frame or hop is longer than a clip'),
    (_edited(label_vocabulary=[{'label_id': 0, 'family': 'bass\x1b[2J'}]),
     'label_vocabulary is not NSynth families'),
    (_edited(wav_encodings='pcm16'), 'wav_encodings are not a list'),
])
def test_an_unreadable_contract_is_one_line_naming_its_source(text, message):
  with pytest.raises(serving_contract.ContractError) as error:
    serving_contract.ServingContract.from_json(text, 'model m at host:1')
  said = str(error.value)
  assert said.startswith('model m at host:1')
  assert message in said
  assert '\n' not in said and '\x1b' not in said


@pytest.mark.slow
def test_the_export_answers_the_contract_it_was_made_with(tmp_path):
  path = export_signatures(tmp_path / '1',
                           names=[signatures.CONTRACT_SIGNATURE])
  loaded = tf.saved_model.load(path)
  assert signatures.read_contract(loaded, path) == CONTRACT
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match='serving_contract answers format json only'):
    loaded.signatures[signatures.CONTRACT_SIGNATURE](
        format=tf.constant('yaml'))
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match='format must be one string, json: this request'):
    loaded.signatures[signatures.CONTRACT_SIGNATURE](
        format=tf.constant(['json', 'json']))


@pytest.mark.slow
def test_an_export_without_a_contract_is_refused_in_one_line(tmp_path):
  path = export_signatures(tmp_path / '1',
                           names=[signatures.AUDIO_SIGNATURE])
  with pytest.raises(serving_contract.ContractError) as error:
    signatures.read_contract(tf.saved_model.load(path), f'--model {path}')
  assert str(error.value) == (
      f'--model {path} has no serving_contract signature, so how to prepare '
      f'audio for it is unknown: export the model again with nsynth-export')


@pytest.mark.slow
def test_the_signatures_prepare_audio_by_the_contract_not_the_defaults(
    tmp_path):
  """A 2 s clip at 8 kHz is one whole window of this export; 4 s of it are
  three windows a second apart (not the default 4 s every 2 s)."""
  path = export_signatures(tmp_path / '1', names=[
      signatures.AUDIO_SIGNATURE, signatures.LONG_AUDIO_SIGNATURE])
  loaded = tf.saved_model.load(path)
  tone = (0.3 * np.sin(np.arange(4 * 8000) / 5.0)).astype(np.float32)
  long = loaded.signatures[signatures.LONG_AUDIO_SIGNATURE](
      audio=tf.constant(tone))
  assert long[signatures.WINDOW_START_SECONDS].numpy().tolist() == [
      0.0, 1.0, 2.0]
  first = loaded.signatures[signatures.AUDIO_SIGNATURE](
      audio=tf.constant(tone[np.newaxis, :16000]))
  np.testing.assert_allclose(
      long[signatures.WINDOW_PROBABILITIES].numpy()[0],
      first[signatures.PROBABILITIES].numpy()[0], atol=1e-6)
  assert [c.decode() for c in first[signatures.CLASSES].numpy()[0]] == [
      'bass', 'guitar', 'string']


# nsynth-predict and nsynth-client prepare files as the export says.

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def other_export(tmp_path_factory):
  """Every signature of an export of CONTRACT (8 kHz, 2 s clips, windows
  every second): (version dir, loaded)."""
  path = export_signatures(tmp_path_factory.mktemp('other') / '1')
  return path, tf.saved_model.load(path)


@pytest.fixture(scope='module')
def user_files(tmp_path_factory):
  """A 1.5 s note and a 3 s recording at 16 kHz, 16-bit PCM: a note and a
  recording for the export, notes both for this project's defaults."""
  folder = tmp_path_factory.mktemp('files')
  files = []
  for name, seconds in (('note.wav', 1.5), ('take.wav', 3.0)):
    t = np.arange(int(16000 * seconds)) / 16000
    (folder / name).write_bytes(wav_bytes(
        0.4 * np.sin(2 * np.pi * 220 * t) * np.exp(-t), 16000))
    files.append(str(folder / name))
  return files


def expected_answers(loaded, files):
  """What the export answers on the files prepared by its contract: the
  note padded to one 2 s clip at 8 kHz, the take cut into its windows."""
  note, take = (audio_decoding.read_file(f, 8000).samples for f in files)
  by_note = loaded.signatures[signatures.AUDIO_SIGNATURE](audio=tf.constant(
      feature_params.pad_or_trim_numpy(note, PARAMS)[np.newaxis]))
  by_take = loaded.signatures[signatures.LONG_AUDIO_SIGNATURE](
      audio=tf.constant(take))
  return (by_note[signatures.PROBABILITIES].numpy()[0],
          by_take[signatures.PROBABILITIES].numpy(),
          by_take[signatures.WINDOW_START_SECONDS].numpy().tolist())


def assert_answered_as_the_export_says(rows, loaded, files):
  note_p, take_p, starts = expected_answers(loaded, files)
  assert starts == [0.0, 1.0]
  note, take = rows
  assert 'seconds' not in note          # a note: one clip of 2 s
  assert take['seconds'] == 3.0 and take['windows'] == 2
  for row, expected in ((note, note_p), (take, take_p)):
    assert row['top'][0]['probability'] == pytest.approx(expected.max(),
                                                         abs=1e-5)
    assert row['family'] == CONTRACT.vocabulary.family(int(expected.argmax()))


def run_module(module, *args):
  return subprocess.run([sys.executable, '-m', module, *map(str, args)],
                        cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_predict_prepares_files_as_the_export_says(other_export, user_files):
  path, loaded = other_export
  result = run_module('serving.predict', f'--model={path}', '--json',
                      *user_files)
  assert result.returncode == 0, result.stderr[-2000:]
  assert_answered_as_the_export_says(json.loads(result.stdout), loaded,
                                     user_files)



@pytest.mark.slow
def test_predict_refuses_bfloat16_only_when_asked_for(other_export,
                                                      user_files):
  """auto answers in float32 from an export without bfloat16 twins (above);
  bfloat16 asked for by name is refused in one line (the export has no
  twins, or, on another CPU, the CPU cannot)."""
  path, _ = other_export
  result = run_module('serving.predict', f'--model={path}',
                      '--precision=bfloat16', *user_files)
  assert result.returncode == 1
  (line,) = result.stderr.strip().splitlines()
  assert line.startswith('error: --precision=bfloat16: ')

class ExportServer:
  """A REST stand-in for TF Serving over a loaded export: every signature,
  inputs and outputs in TF Serving's columnar JSON (bytes as {"b64"}, a
  one-output signature's value alone)."""

  def __init__(self, loaded):
    def run(body):
      (key, value), = body['inputs'].items()
      if isinstance(value, dict) or (isinstance(value, list) and value and
                                     isinstance(value[0], dict)):
        tensor = tf.constant(decoded_b64(value))
      else:
        tensor = tf.constant(value, None if isinstance(value, str)
                             else tf.float32)
      outputs = columnar_outputs(loaded.signatures[body['signature_name']](
          **{key: tensor}))
      return outputs if len(outputs) > 1 else next(iter(outputs.values()))

    def reply(path: str, request: bytes) -> tuple[int, bytes]:
      try:
        code, answer = 200, {'outputs': run(json.loads(request))}
      except tf.errors.InvalidArgumentError as e:
        code, answer = 400, {'error': e.message}
      return code, json.dumps(answer).encode()

    self._http = LocalHttpServer(reply)
    self.port = self._http.port

  def close(self):
    self._http.close()


@pytest.mark.slow
def test_the_client_prepares_files_as_the_served_export_says(other_export,
                                                             user_files):
  path, loaded = other_export
  server = ExportServer(loaded)
  try:
    result = run_module('serving.client', '--host=127.0.0.1',
                        f'--port={server.port}', '--json', *user_files)
  finally:
    server.close()
  assert result.returncode == 0, result.stderr[-2000:]
  assert_answered_as_the_export_says(json.loads(result.stdout), loaded,
                                     user_files)


@pytest.mark.slow
def test_the_client_reads_the_contract_a_server_answers(other_export):
  _, loaded = other_export
  server = ExportServer(loaded)
  try:
    assert tf_serving.contract_rest('127.0.0.1', server.port,
                                    'nsynth_instrument') == CONTRACT
  finally:
    server.close()


@pytest.mark.slow
def test_an_export_that_disagrees_with_its_model_is_refused_in_our_words(
    other_export):
  """Checked with our exception, not `assert`, which `python -O` drops."""
  path, _ = other_export
  keras.utils.set_random_seed(1)
  another = tiny_model()   # other weights than the exported model's
  with pytest.raises(export_check.ExportCheckError,
                     match='the reloaded export disagrees with the model: '
                     'serving_default differs by'):
    export_check.verify_export(path, another, CONTRACT)
  with pytest.raises(export_check.ExportCheckError,
                     match='answers another contract than it was made with'):
    export_check.verify_export(path, another, dataclasses.replace(
        CONTRACT, wav_encodings=()))


@pytest.mark.slow
def test_predict_holds_one_recording_at_a_time_and_keeps_only_answers(
    other_export, tmp_path, monkeypatch):
  """Files are decoded and answered a batch of notes, or one recording, at a
  time: once a recording is answered (and drawn) its samples are gone, so
  memory does not grow with the number of files."""
  import gc
  import weakref

  from serving import audio_files
  from serving import predictor as predictor_lib
  path, _ = other_export
  files = []
  for i, seconds in enumerate((1.0, 3.0, 1.5, 3.5, 4.0)):
    t = np.arange(int(8000 * seconds)) / 8000
    files.append(tmp_path / f'{i}.wav')
    files[-1].write_bytes(wav_bytes(0.4 * np.sin(2 * np.pi * 330 * t), 8000))
  files = [str(f) for f in files]
  decoded = {}
  read_samples = audio_files.read_samples

  def tracked(file, *args):
    samples = read_samples(file, *args)
    decoded[file] = weakref.ref(samples)
    return samples
  monkeypatch.setattr(audio_files, 'read_samples', tracked)
  recordings_alive = []

  def drawn(file, waveform, outputs):
    gc.collect()
    recordings_alive.append(sorted(
        f for f, alive in decoded.items()
        if alive() is not None and len(alive()) > 2 * 8000))

  model = predictor_lib.Predictor(path)
  predictions = model.predict(files, on_recording=drawn)
  assert [p.error for p in predictions] == [None] * 5
  assert [p.seconds is not None for p in predictions] == [
      False, True, False, True, True]
  # When each recording is drawn, it is the only one alive.
  assert recordings_alive == [[files[1]], [files[3]], [files[4]]]
  gc.collect()
  assert not [f for f, alive in decoded.items() if alive() is not None]
  assert not hasattr(model, 'recordings')
