"""One decoding contract at every entry point.

The matrix: every encoding a user may hand us, through every way audio
enters the project (the Beam job's notes and --recordings, nsynth-predict,
nsynth-client, the serving_wav graph), must give the same samples, each
close to an independent reference, or the same refusal in the same words.
Then one small end-to-end run per entry point, and the answers to a note
without sound.
"""

import glob
import hashlib
import io
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import soundfile
import tensorflow as tf

from beam_pipelines import note_audio
from beam_pipelines import nsynth_tfrecords
from nsynth_contracts import audio_decoding
from nsynth_contracts import audio_limits
from nsynth_contracts import examples_json
from nsynth_contracts import feature_params
from nsynth_contracts import labels
from nsynth_contracts import manifest as manifest_lib
from nsynth_contracts import outcomes
from nsynth_contracts import schema
from nsynth_contracts import serving_contract
from nsynth_contracts import window_params
from serving import audio_files
from serving import exporter
from serving import results
from serving import signatures
from serving import wav_graph
from tests.conftest import float_wav_bytes
from tests.conftest import wav_bytes
from tests.rest_stand_in import LocalHttpServer
from tests.rest_stand_in import columnar_outputs
from tests.rest_stand_in import decoded_b64
from trainer import recipes

PARAMS = feature_params.DEFAULT_PARAMS
RATE = PARAMS.sample_rate_hz
MAX_SECONDS = 600.0
# What an export of the default features is made with.
CONTRACT = serving_contract.ServingContract(
    PARAMS, window_params.DEFAULT_WINDOWS,
    labels.LabelVocabulary.from_filters(), wav_graph.ENCODINGS)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tone(rate=RATE, seconds=1.5, amplitude=0.5):
  t = np.arange(int(rate * seconds)) / rate
  return amplitude * np.sin(2 * np.pi * 440.0 * t)


def quantized(samples, width):
  """What `width`-byte PCM holds of `samples`, as float32 in [-1, 1)."""
  scale = float(1 << (8 * width - 1))
  ints = np.clip(np.round(np.asarray(samples) * scale), -scale, scale - 1)
  return (ints / scale).astype(np.float32)


def sound_file(samples, fmt, subtype, rate=RATE):
  buffer = io.BytesIO()
  soundfile.write(buffer, np.asarray(samples, np.float32), rate, format=fmt,
                  subtype=subtype)
  return buffer.getvalue()


def streaming(data):
  """A writer that never went back to fill in the data chunk's size."""
  assert data[36:40] == b'data'
  return data[:40] + b'\xff\xff\xff\xff' + data[44:]


JUNK = np.random.default_rng(11).bytes(6000)
assert audio_decoding.sniff(JUNK) is None  # really no format's start
STEREO = np.stack([tone(), 0.25 * tone()], axis=1)
ANTI_PHASE = np.stack([tone(), -0.5 * tone()], axis=1)

# name -> (file name, bytes, the samples expected (None: a refusal), how
# close, serving_wav: 'same' or the start of its own refusal)
CASES = {
    'pcm8': ('n.wav', wav_bytes(tone(), sample_width=1), quantized(tone(), 1),
             0, '8-bit PCM WAV: serving_wav decodes 16-bit PCM only'),
    'pcm16': ('n.wav', wav_bytes(tone()), quantized(tone(), 2), 0, 'same'),
    'pcm24': ('n.wav', wav_bytes(tone(), sample_width=3),
              quantized(tone(), 3), 0, '24-bit PCM WAV: serving_wav'),
    'pcm32': ('n.wav', wav_bytes(tone(), sample_width=4),
              quantized(tone(), 4), 0, '32-bit PCM WAV: serving_wav'),
    'float32': ('n.wav', float_wav_bytes(tone()), tone().astype(np.float32),
                0, '32-bit float WAV: serving_wav'),
    'float64': ('n.wav', sound_file(tone(), 'WAV', 'DOUBLE'),
                tone().astype(np.float32), 0, '64-bit float WAV: serving_wav'),
    # libsndfile writes 16-bit PCM scaled by 32767 and reads it back by
    # 32768: within two steps of 16 bits of the tone.
    'extensible': ('n.wav', sound_file(tone(), 'WAVEX', 'PCM_16'),
                   tone().astype(np.float32), 2 / 32768, 'same'),
    'streaming': ('n.wav', streaming(wav_bytes(tone())), quantized(tone(), 2),
                  0, 'same'),
    'stereo': ('n.wav', wav_bytes(STEREO),
               (quantized(STEREO[:, 0], 2) + quantized(STEREO[:, 1], 2)) / 2,
               1e-7, 'same'),
    # The quieter channel is turned before the average, not cancelled.
    'stereo in anti-phase': ('n.wav', wav_bytes(ANTI_PHASE), (
        quantized(ANTI_PHASE[:, 0], 2) - quantized(ANTI_PHASE[:, 1], 2)) / 2,
                             1e-7, 'same'),
    '44.1kHz': ('n.wav', wav_bytes(tone(44100), sample_rate=44100),
                tone().astype(np.float32), 2e-3,
                'WAV sample rate must be 16000 Hz, not 44100 Hz'),
    'flac': ('n.flac', sound_file(tone(), 'FLAC', 'PCM_16'),
             tone().astype(np.float32), 2 / 32768,
             'FLAC audio: serving_wav decodes'),
    'ogg': ('n.ogg', sound_file(tone(), 'OGG', 'VORBIS'),
            tone().astype(np.float32), 'lossy', 'OGG audio: serving_wav'),
    'mp3': ('n.mp3', sound_file(tone(), 'MP3', 'MPEG_LAYER_III'),
            tone().astype(np.float32), 'lossy', 'MP3 audio: serving_wav'),
    '1-sample': ('n.wav', wav_bytes(np.array([0.25])),
                 np.array([0.25], np.float32), 0, 'same'),
    'silence': ('n.wav', wav_bytes(np.zeros(RATE * 4)),
                np.zeros(RATE * 4, np.float32), 0, 'same'),
    'truncated': ('n.wav', wav_bytes(tone())[:20000], None,
                  'truncated: the data chunk declares 48000 bytes but the '
                  'file holds 19956', 'same'),
    'junk': ('n.wav', JUNK, None, 'not a WAV, FLAC, OGG or MP3 file', 'same'),
    'junk named .mp3': ('n.mp3', JUNK, None,
                        'not a WAV, FLAC, OGG or MP3 file', 'same'),
    'empty': ('n.wav', b'', None, 'the file is empty (0 bytes)', 'same'),
}


@pytest.fixture(scope='module')
def case_files(tmp_path_factory):
  """{case: path}, each in its own directory <case>/audio/."""
  root = tmp_path_factory.mktemp('cases')
  paths = {}
  for index, (name, (file_name, data, *_)) in enumerate(CASES.items()):
    audio_dir = root / f'case{index}' / 'audio'
    audio_dir.mkdir(parents=True)
    (audio_dir / file_name).write_bytes(data)
    paths[name] = str(audio_dir / file_name)
  return paths


# Each entry point's own reader: samples, or the words it refuses in.


def beam_note(path):
  note = examples_json.Note('n', 0, 'n', 60, 100, 'guitar', 'acoustic', path,
                            'train')
  clip = note_audio.load_clip(note, PARAMS)
  return clip.reason if isinstance(clip, outcomes.DeadLetter) else clip


def beam_recording(path):
  """What the --recordings DoFn runs on each recording."""
  try:
    return audio_decoding.read_file(
        path, RATE, max_seconds=MAX_SECONDS,
        inside=os.path.dirname(path)).samples
  except audio_limits.AudioError as e:
    return str(e)


def predict_reader(path):
  return audio_files.read_samples(path, RATE, MAX_SECONDS)


def client_reader(path):
  try:
    return audio_files.read_for_server(path, CONTRACT).samples
  except audio_limits.AudioError as e:
    return str(e)


@tf.function(input_signature=[tf.TensorSpec([], tf.string)])
def _graph_decode(wav):
  return wav_graph.decode(wav, RATE, signatures.WAV_SIGNATURE,
                          signatures.AUDIO_SIGNATURE)


def serving_wav_graph(path):
  with open(path, 'rb') as f:
    data = f.read()
  try:
    return _graph_decode(tf.constant(data)).numpy()
  except tf.errors.InvalidArgumentError as e:
    assert 'Tensor had' not in e.message
    return results.readable_error(e.message)


def assert_close(samples, expected, tolerance):
  if tolerance == 'lossy':   # OGG and MP3: the tone's pitch and loudness
    spectrum = np.abs(np.fft.rfft(samples[:RATE]))
    assert abs(np.argmax(spectrum) - 440) <= 1
    rms = np.sqrt(np.mean(samples[RATE // 4:RATE] ** 2))
    assert rms == pytest.approx(0.5 / np.sqrt(2), rel=0.1)
    return
  assert samples.shape == expected.shape
  inner = slice(RATE // 8, -RATE // 8) if len(expected) > RATE else slice(None)
  np.testing.assert_allclose(samples[inner], expected[inner], rtol=0,
                             atol=tolerance)


@pytest.mark.parametrize('case', list(CASES))
def test_every_entry_point_decodes_alike_or_refuses_alike(case, case_files):
  _, _, expected, how, serving = CASES[case]
  path = case_files[case]
  got = {'predict': predict_reader(path), 'client': client_reader(path),
         'beam recordings': beam_recording(path), 'beam notes': beam_note(path)}
  if expected is None:   # a refusal: the same words everywhere
    assert got == dict.fromkeys(got, how)
    assert serving_wav_graph(path) == how
    return
  reference = got['predict']
  assert isinstance(reference, np.ndarray), reference
  assert reference.dtype == np.float32
  assert_close(reference, expected, how)
  for entry in ('client', 'beam recordings'):
    np.testing.assert_array_equal(got[entry], reference, err_msg=entry)
  # A note is its first clip, padded with silence.
  np.testing.assert_array_equal(
      got['beam notes'], feature_params.pad_or_trim_numpy(reference, PARAMS))
  by_graph = serving_wav_graph(path)
  if serving == 'same':
    np.testing.assert_array_equal(by_graph, reference)
  else:
    assert by_graph.startswith(serving)
    assert by_graph.endswith('send decoded float samples to serving_default'
                             if 'sample rate' not in by_graph else
                             'send resampled float samples to serving_default')


@pytest.mark.parametrize('case', [c for c, v in CASES.items()
                                  if v[2] is not None])
def test_the_client_sends_bytes_only_where_serving_wav_decodes_them_alike(
    case, case_files):
  local = audio_files.read_for_server(case_files[case], CONTRACT)
  assert (local.wav is not None) == (CASES[case][4] == 'same')
  if local.wav is not None:
    np.testing.assert_array_equal(
        _graph_decode(tf.constant(local.wav)).numpy(), local.samples)


def sparse_wav(path, seconds, rate=RATE):
  """A 16-bit mono WAV of `seconds` of silence that takes no disk space."""
  data_bytes = 2 * int(seconds * rate)
  header = wav_bytes(np.zeros(1), sample_rate=rate)[:44]
  header = (header[:4] + (36 + data_bytes).to_bytes(4, 'little') +
            header[8:40] + data_bytes.to_bytes(4, 'little'))
  with open(path, 'wb') as f:
    f.write(header)
    f.truncate(44 + data_bytes)


# --- End to end, with a model ------------------------------------------------


@pytest.fixture(scope='module')
def exported(default_tfrecords, tmp_path_factory):
  """An untrained model on the default features, exported: its answers are
  as good as any for comparing entry points, and it costs no training."""
  manifest = manifest_lib.read(str(default_tfrecords))
  model = recipes.build('stats_mlp', manifest)
  path = exporter.export_model(model, manifest,
                             str(tmp_path_factory.mktemp('export')))
  return path, tf.saved_model.load(path)


def note_answer(loaded, samples):
  clip = feature_params.pad_or_trim_numpy(samples, PARAMS)
  outputs = loaded.signatures[signatures.AUDIO_SIGNATURE](
      audio=tf.constant(clip[np.newaxis]))
  return {k: v.numpy()[0] for k, v in outputs.items()}


@pytest.mark.slow
def _click_in_silence():
  samples = np.zeros(RATE * 4)
  samples[RATE:RATE + 16] = 0.99
  return samples


@pytest.mark.parametrize('samples', [
    np.zeros(RATE * 4), np.zeros(1), np.full(RATE * 4, 1e-5),
    np.array([0.01]), np.array([0.99]), _click_in_silence(),
    np.full(RATE * 4, 0.05), np.full(RATE * 4, -1 / 128)],
    ids=['4 s of silence', '1 zero sample', '-100 dBFS', 'one quiet click',
         'a one-sample file at full scale', 'a loud click in 4 s of silence',
         'a DC offset of 0.05', 'an 8-bit silence of 0x7F as 16 bits'])
def test_a_note_without_sound_is_answered_no_sound_by_both_signatures(
    exported, samples):
  _, loaded = exported
  answers = [note_answer(loaded, samples.astype(np.float32)),
             {k: v.numpy()[0] for k, v in loaded.signatures[
                 signatures.WAV_SIGNATURE](
                     wav=tf.constant([wav_bytes(samples)])).items()}]
  for answer in answers:
    assert answer[signatures.FAMILY] == b'(no sound)'
    assert answer[signatures.CLASS_ID] == -1
    assert not answer[signatures.PROBABILITIES].any()


def run_command(module, *args):
  return subprocess.run([sys.executable, '-m', module, *map(str, args)],
                        cwd=REPO, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_predict_answers_every_encoding_as_the_beam_job_decodes_it(
    exported, case_files, tmp_path):
  path, loaded = exported
  files = [case_files[c] for c in ('pcm16', 'pcm32', 'float64', 'streaming',
                                   'flac', 'silence', 'junk named .mp3')]
  recording = tone(seconds=29.0)
  long_pcm32 = tmp_path / 'recording.wav'
  long_pcm32.write_bytes(wav_bytes(recording, sample_width=4))
  two_hours = tmp_path / 'two_hours.wav'
  sparse_wav(two_hours, 7200)
  (tmp_path / 'a').mkdir()
  (tmp_path / 'b').mkdir()
  for folder, amplitude in (('a', 0.5), ('b', 0.2)):
    (tmp_path / folder / 'x.wav').write_bytes(wav_bytes(tone(
        seconds=6.0, amplitude=amplitude)))
  plots = tmp_path / 'plots'
  result = run_command('serving.predict', f'--model={path}', '--json',
                       f'--plot={plots}', *files, long_pcm32, two_hours,
                       tmp_path / 'a' / 'x.wav', tmp_path / 'b' / 'x.wav')
  assert result.returncode == 1   # the junk and the two hours
  rows = json.loads(result.stdout)
  expected = note_answer(loaded, audio_decoding.decode_clip(
      CASES['pcm16'][1]))
  for row in rows[:5]:   # pcm16, pcm32, float64, streaming and FLAC
    assert row['family'] == expected[signatures.FAMILY].decode()
    assert row['top'][0]['probability'] == pytest.approx(
        expected[signatures.PROBABILITIES].max(), abs=1e-4)
  assert rows[5] == {'file': files[5], 'family': '(no sound)', 'top': []}
  assert rows[6]['error'] == 'not a WAV, FLAC, OGG or MP3 file'
  assert rows[7]['seconds'] == 29.0 and rows[7]['windows'] == 14
  assert rows[8]['error'] == ('the recording lasts 7200.0 s, longer than the '
                              '600 s allowed; cut it into parts')
  # Two recordings named x.wav: two pictures, neither overwritten.
  def hashed(folder):
    path = str(tmp_path / folder / 'x.wav').encode()
    return f'x-{hashlib.sha256(path).hexdigest()[:8]}.png'
  assert sorted(p.name for p in plots.iterdir()) == sorted(
      ['recording.png', hashed('a'), hashed('b')])
  assert not [line for line in result.stderr.splitlines()
              if 'Note:' in line or 'mpg123' in line or 'resync' in line]


class _SignatureServer:
  """A REST stand-in that answers with the export's signatures in TF
  Serving's columnar format, for WAV bytes and float samples alike."""

  def __init__(self, loaded):
    self.signatures_called = []   # those that answer audio
    self.contracts_asked = 0

    def answer(request: bytes) -> tuple[int, bytes]:
      body = json.loads(request)
      name = body['signature_name']
      (key, value), = body['inputs'].items()
      if name == signatures.CONTRACT_SIGNATURE:
        self.contracts_asked += 1
        # One output: TF Serving's columnar reply is the value alone.
        return 200, json.dumps({'outputs': loaded.signatures[name](
            **{key: tf.constant(value)})[signatures.CONTRACT].numpy().decode(
            )}).encode()
      self.signatures_called.append(name)
      if key == signatures.WAV_INPUT:
        tensor = tf.constant(decoded_b64(value))
      else:
        tensor = tf.constant(value, tf.float32)
      try:
        outputs = loaded.signatures[name](**{key: tensor})
      except tf.errors.InvalidArgumentError as e:
        return 400, json.dumps({'error': e.message}).encode()
      return 200, json.dumps({'outputs': columnar_outputs(outputs)}).encode()

    self._http = LocalHttpServer(lambda path, request: answer(request))
    self.port = self._http.port

  def close(self):
    self._http.close()


@pytest.mark.slow
def test_the_client_answers_every_encoding_as_predict_does(exported,
                                                           case_files,
                                                           tmp_path):
  path, loaded = exported
  files = [case_files[c] for c in ('pcm16', 'pcm32', 'streaming', 'silence')]
  recording = tmp_path / 'recording.flac'
  recording.write_bytes(sound_file(tone(seconds=10.0), 'FLAC', 'PCM_16'))
  files.append(str(recording))
  server = _SignatureServer(loaded)
  try:
    result = run_command('serving.client', '--host=127.0.0.1',
                         f'--port={server.port}', '--json', *files)
  finally:
    server.close()
  assert result.returncode == 0, result.stderr
  assert sorted(server.signatures_called) == [
      signatures.AUDIO_SIGNATURE, signatures.LONG_AUDIO_SIGNATURE,
      signatures.WAV_SIGNATURE]
  assert server.contracts_asked == 1
  by_client = json.loads(result.stdout)
  # As the client's server computes: float32.
  by_predict = json.loads(run_command('serving.predict', f'--model={path}',
                                      '--json', '--precision=float32',
                                      *files).stdout)
  for mine, theirs in zip(by_client, by_predict):
    assert mine['family'] == theirs['family']
    assert [t['family'] for t in mine['top']] == [
        t['family'] for t in theirs['top']]
    for a, b in zip(mine['top'], theirs['top']):
      assert a['probability'] == pytest.approx(b['probability'], abs=1e-4)
  assert by_client[3]['family'] == '(no sound)'


@pytest.mark.slow
def test_the_beam_job_decodes_notes_and_recordings_as_predict_does(tmp_path):
  split = tmp_path / 'nsynth-train'
  (split / 'audio').mkdir(parents=True)
  entries = {}
  for case in ('pcm16', 'pcm32', 'float64', 'streaming', 'flac', 'truncated',
               'junk'):
    name = f'guitar_acoustic_000-0{len(entries) + 60}-100'
    entries[name] = {'note_str': name, 'instrument': 0,
                     'instrument_str': 'guitar_acoustic_000',
                     'pitch': 60 + len(entries), 'velocity': 100,
                     'instrument_family_str': 'guitar',
                     'instrument_source_str': 'acoustic', 'case': case}
    # Notes are named .wav whatever they hold: the bytes decide.
    (split / 'audio' / f'{name}.wav').write_bytes(CASES[case][1])
  (split / 'examples.json').write_text(json.dumps(entries))
  phrases = tmp_path / 'phrases-train'
  (phrases / 'audio').mkdir(parents=True)
  (phrases / 'audio' / 'take.wav').write_bytes(wav_bytes(
      tone(seconds=9.0), sample_width=4))
  sparse_wav(phrases / 'audio' / 'hour.wav', 3600)
  (phrases / 'audio' / 'click.wav').write_bytes(wav_bytes(np.array([0.5])))
  (phrases / 'audio' / 'loop.wav').symlink_to(phrases / 'audio' / 'loop.wav')
  label = {'family': 'guitar', 'source': 'acoustic'}
  (phrases / 'labels.json').write_text(json.dumps(
      dict.fromkeys(['take.wav', 'hour.wav', 'click.wav', 'loop.wav'],
                    label)))
  out = tmp_path / 'out'
  out = pathlib.Path(nsynth_tfrecords.run([
      f'--input={split}', f'--output_dir={out}', f'--recordings={phrases}',
      '--keep_audio']).dataset_dir)
  files = glob.glob(str(out / 'train-*.tfrecord.gz'))
  records = tf.data.TFRecordDataset(files, compression_type='GZIP').batch(99)
  manifest = manifest_lib.read(str(out))
  parsed = schema.parse_batch(next(iter(records)), manifest.mfcc_shape,
                              PARAMS.clip_samples)
  stored = dict(zip((n.decode() for n in parsed[schema.NOTE_STR].numpy()),
                    parsed[schema.AUDIO].numpy()))
  letters = {json.loads(line)['note_str']: json.loads(line)
             for path in glob.glob(str(out / 'dead_letters' / '*.jsonl'))
             for line in open(path)}
  for name in entries:
    by_predict = predict_reader(str(split / 'audio' / f'{name}.wav'))
    if isinstance(by_predict, str):
      assert letters[name]['reason'] == by_predict
    else:
      np.testing.assert_array_equal(
          stored[name], feature_params.pad_or_trim_numpy(by_predict, PARAMS))
  # The recordings: a 9 s take in windows; the hour refused by its header;
  # a one-sample click holds no sound (its one window is skipped as silent);
  # a link to itself costs only itself.
  take = predict_reader(str(phrases / 'audio' / 'take.wav'))
  np.testing.assert_array_equal(stored['take.wav@2s'],
                                take[2 * RATE:6 * RATE])
  assert 'click.wav@0s' not in stored
  assert manifest.accounting.recordings.silent_windows_skipped == 1
  assert {k: v['kind'] for k, v in letters.items() if '.wav' in k} == {
      'hour.wav': 'too_long', 'loop.wav': 'unreadable_audio'}
  assert letters['hour.wav']['reason'] == (
      'the recording lasts 3600.0 s, longer than the 600 s allowed; cut it '
      'into parts')
