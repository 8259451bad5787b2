"""The export's contract: what it was made with travels inside it.

Fast: a tiny Keras model and only the signatures under test are exported.
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from nsynth_contracts import feature_params
from nsynth_contracts import labels
from nsynth_contracts import serving_contract
from nsynth_contracts import window_params
from serving import signatures

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
    (_edited(contract_version=2), 'has version 2; this code reads version 1'),
    (_edited(feature_params=None), 'feature_params is missing'),
    (_edited(feature_params__sample_rate_hz='16k'),
     'sample_rate_hz is not a number of its kind'),
    (_edited(feature_params__sample_rate_hz=16000.5),
     'sample_rate_hz is not a number of its kind'),
    (_edited(feature_params__sample_rate_hz=10**9), 'is outside 8000..384000'),
    (_edited(window_params__hop_seconds=0), 'hop_seconds must be positive'),
    (_edited(window_params__max_seconds=float('inf')),
     'max_seconds is not a number'),
    (_edited(feature_params__warp_factor=3), '1 unknown field'),
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


def test_an_export_without_a_contract_is_refused_in_one_line(tmp_path):
  path = export_signatures(tmp_path / '1',
                           names=[signatures.AUDIO_SIGNATURE])
  with pytest.raises(serving_contract.ContractError) as error:
    signatures.read_contract(tf.saved_model.load(path), f'--model {path}')
  assert str(error.value) == (
      f'--model {path} has no serving_contract signature, so how to prepare '
      f'audio for it is unknown: export the model again with nsynth-export')


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
