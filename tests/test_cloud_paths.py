"""gs:// paths, against a GCS emulator the tests start on 127.0.0.1 and stop.

Beam's GCS file system (google-cloud-storage underneath) honours
STORAGE_EMULATOR_HOST, so the Beam job reads NSynth splits from and writes
records to gs:// buckets here as it would on Google Cloud. The Dataflow dry
run builds the README's Dataflow command against those buckets, translated
by DataflowRunner and never submitted.
"""

import json
import logging
import os
import socket

import pytest
from apache_beam.internal.gcp import auth as beam_auth
from apache_beam.io.filesystems import FileSystems

from beam_pipelines import job as job_lib
from beam_pipelines import nsynth_tfrecords
from beam_pipelines import output
from nsynth_common import storage
from nsynth_contracts import manifest as manifest_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUCKET = 'nsynth-test-bucket'


@pytest.fixture
def gcs(gcs_server):
  """gs:// of the emulator's bucket (gcs_server)."""
  return f'gs://{BUCKET}'


@pytest.fixture
def gcs_server(monkeypatch):
  """An in-memory GCS emulator on a free local port, with one bucket; the
  process's GCS clients (and its subprocesses) talk to it. Its stop()
  takes the store away."""
  from gcp_storage_emulator.server import create_server
  with socket.socket() as probe:
    probe.bind(('127.0.0.1', 0))
    port = probe.getsockname()[1]
  server = create_server('127.0.0.1', port, in_memory=True,
                         default_bucket=BUCKET)
  server.start()
  monkeypatch.setenv('STORAGE_EMULATOR_HOST', f'http://127.0.0.1:{port}')
  # Offline there are no Google credentials: Beam would look for them with
  # retries for about 30 s before connecting anonymously, which is what the
  # emulator expects; start anonymous.
  monkeypatch.setattr(beam_auth._Credentials, '_credentials_init', True)
  monkeypatch.setattr(beam_auth._Credentials, '_credentials', None)
  yield server
  server.stop()


NOTES = 12   # of the split, enough for every outcome (the emulator is slow)


def upload_split(split_dir, url) -> int:
  """The first NOTES entries of an NSynth split directory and their audio,
  copied to gs:// as `gsutil cp` would; returns how many."""
  entries = json.loads((split_dir / 'examples.json').read_text())
  kept = dict(sorted(entries.items())[:NOTES])
  with FileSystems.create(f'{url}/examples.json') as target:
    target.write(json.dumps(kept).encode())
  for name in kept:
    with open(split_dir / 'audio' / f'{name}.wav', 'rb') as source, (
        FileSystems.create(f'{url}/audio/{name}.wav')) as target:
      target.write(source.read())
  return len(kept)


@pytest.mark.slow
def test_the_beam_job_reads_and_writes_gs_paths(gcs, tiny_demo):
  notes = upload_split(tiny_demo / 'nsynth-test', f'{gcs}/nsynth/nsynth-test')
  output_dir = f'{gcs}/nsynth-tfrecords'
  job = nsynth_tfrecords.run([f'--input={gcs}/nsynth/nsynth-test',
                              f'--output_dir={output_dir}',
                              '--embedding=none'])
  accounting = job.manifest.accounting
  assert accounting.read == notes
  assert sum(accounting.written.values()) > 0
  assert job.dataset_dir.startswith(f'{output_dir}/')
  with FileSystems.open(f'{job.dataset_dir}/manifest.json') as f:
    assert manifest_lib.Manifest.from_json(json.loads(f.read())) == (
        job.manifest)
  for name in job.manifest.files:
    assert FileSystems.exists(f'{job.dataset_dir}/{name}'), name

  # Write-once on an object store: a second run writes a new version, and
  # --overwrite deletes the older one only once the new one is complete.
  with pytest.raises(output.OutputDirNotEmptyError):
    nsynth_tfrecords.run([f'--input={gcs}/nsynth/nsynth-test',
                          f'--output_dir={output_dir}', '--embedding=none'])
  again = nsynth_tfrecords.run([f'--input={gcs}/nsynth/nsynth-test',
                                f'--output_dir={output_dir}',
                                '--embedding=none', '--overwrite'])
  assert again.manifest.splits == job.manifest.splits
  assert output.files_for(output_dir).entries(output_dir) == [
      storage.Entry(again.dataset_dir.rsplit('/', 1)[1],
                    storage.Kind.DIRECTORY)]


class StopsTheStore:
  """A job's report stream that takes the store away as soon as the job
  says where it writes, and keeps what the job says."""

  def __init__(self, server):
    self._server = server
    self.lines = []

  def write(self, text: str) -> None:
    self.lines.append(text)
    if self._server and 'writing gs://' in text:
      self._server.stop()

  def flush(self) -> None:
    pass


@pytest.mark.slow
@pytest.mark.parametrize('when', ['the job starts writing', 'a note is read'])
def test_a_store_that_stops_answering_ends_the_job_in_one_line(
    gcs_server, gcs, tiny_demo, monkeypatch, when):
  """Each access used to retry for 120 s and each note's failure was
  dead-lettered: the job never ended. Now the first access that gets no
  answer within the bound stops the job, which says what it left."""
  from beam_pipelines import gcs as gcs_lib
  monkeypatch.setattr(gcs_lib, 'RETRY_SECONDS', 1.0)
  if when == 'a note is read':
    read_bytes = gcs_lib.read_bytes

    def stop_first(path, *args):
      if path.endswith('.wav'):
        gcs_server.stop()
      return read_bytes(path, *args)
    monkeypatch.setattr(gcs_lib, 'read_bytes', stop_first)
  upload_split(tiny_demo / 'nsynth-test', f'{gcs}/nsynth/nsynth-test')
  output_dir = f'{gcs}/nsynth-tfrecords'
  config, beam_args = nsynth_tfrecords.parse_args([
      f'--input={gcs}/nsynth/nsynth-test', f'--output_dir={output_dir}',
      '--embedding=none'])
  report = StopsTheStore(gcs_server if when == 'the job starts writing'
                         else None)
  with pytest.raises(output.OutputDirError) as error:
    job_lib.run_job(config, beam_args, report=report, show_progress=False)
  message = str(error.value)
  assert '\n' not in message
  assert message.startswith('the storage stopped answering while the job ran')
  version = ''.join(report.lines).split('writing ', 1)[1].split()[0]
  assert (f'its unfinished version {version} could not be deleted: remove '
          f'it once the storage answers') in message
  assert f'--output_dir {output_dir}' in message
  assert ('.wav could not be read' in message) == (when == 'a note is read')


def test_inputs_whose_store_does_not_answer_are_one_line(
    gcs_server, gcs, tiny_demo, monkeypatch):
  from beam_pipelines import gcs as gcs_lib
  monkeypatch.setattr(gcs_lib, 'RETRY_SECONDS', 1.0)
  gcs_lib.bound_retries()
  upload_split(tiny_demo / 'nsynth-test', f'{gcs}/nsynth/nsynth-test')
  config, _ = nsynth_tfrecords.parse_args([
      f'--input={gcs}/nsynth/nsynth-test', f'--output_dir={gcs}/out',
      '--embedding=none'])
  gcs_server.stop()
  with pytest.raises(job_lib.JobInputError) as error:
    job_lib.check_inputs(config)
  message = str(error.value)
  assert message.startswith('the storage of the inputs did not answer')
  assert '\n' not in message and 'nothing was written' in message


def test_no_google_credentials_is_one_line_not_four_tracebacks(
    monkeypatch, caplog):
  import google.auth
  from apache_beam.options.pipeline_options import PipelineOptions
  from apache_beam.utils import retry as beam_retry

  from beam_pipelines import gcs as gcs_lib

  def no_credentials(*args, **kwargs):
    raise google.auth.exceptions.DefaultCredentialsError('none here')
  monkeypatch.setattr(google.auth, 'default', no_credentials)
  monkeypatch.setattr(beam_retry.Clock, 'sleep', lambda self, seconds: None)
  monkeypatch.setattr(beam_auth._Credentials, '_credentials_init', False)
  with gcs_lib.credentials_lookup_said_once():
    assert beam_auth.get_service_credentials(PipelineOptions()) is None
  said = [r.getMessage() for r in caplog.records
          if r.levelno >= logging.WARNING]
  assert said == [gcs_lib.NO_CREDENTIALS]


def test_a_gs_directory_is_listed_one_level(gcs):
  for name in ('20200101-000000-aaaaaa/manifest.json',
               '20200101-000000-aaaaaa/dead_letters/d.jsonl',
               '20210101-000000-bbbbbb/a/b/c/deep.txt', 'notes.txt'):
    with FileSystems.create(f'{gcs}/out/{name}') as f:
      f.write(b'x')
  files = output.files_for(f'{gcs}/out')
  assert files.entries(f'{gcs}/out') == [
      storage.Entry('20200101-000000-aaaaaa', storage.Kind.DIRECTORY),
      storage.Entry('20210101-000000-bbbbbb', storage.Kind.DIRECTORY),
      storage.Entry('notes.txt', storage.Kind.FILE)]
  assert files.entries(f'{gcs}/nowhere') == []


def test_a_dry_run_on_the_local_engine_is_refused(gcs, tiny_demo):
  with pytest.raises(job_lib.JobInputError, match='has no dry run'):
    nsynth_tfrecords.run([f'--input={tiny_demo / "nsynth-test"}',
                          f'--output_dir={gcs}/out', '--dry_run=True'])


@pytest.mark.slow
def test_the_readmes_dataflow_command_builds_and_is_not_submitted(
    gcs, tiny_demo, capsys):
  """The README's Dataflow command, exactly, its placeholders filled in, with
  --dry_run=True: DataflowRunner translates the job (and builds the worker
  package from setup.py) without submitting it; one line says so, and
  nothing is written."""
  notes = upload_split(tiny_demo / 'nsynth-test', f'{gcs}/nsynth/nsynth-test')
  readme = open(os.path.join(REPO, 'README.md')).read()
  command = readme.split('```bash\nnsynth-tfrecords \\\n', 1)[1].split(
      '```', 1)[0]
  filled = (command.replace('gs://BUCKET', gcs)
            .replace('PROJECT', 'nsynth-dry-run')
            .replace('REGION', 'us-central1'))
  flags = [flag for line in filled.splitlines()
           for flag in line.strip(' \\').split()]
  assert flags[0].startswith('--input=') and '--runner=DataflowRunner' in (
      flags)
  flags[0] = f'--input={gcs}/nsynth/nsynth-test'   # one split is enough
  cwd = os.getcwd()
  os.chdir(REPO)   # --setup_file=./setup.py, as the README runs it
  try:
    capsys.readouterr()
    job = nsynth_tfrecords.run([*flags, '--dry_run=True'])
  finally:
    os.chdir(cwd)
  assert isinstance(job, job_lib.DryRun)
  assert capsys.readouterr().out.strip().splitlines() == [
      f'DataflowRunner dry run: the job for {notes} notes was built and '
      f'translated, not submitted; nothing was written']
  assert not FileSystems.match([f'{gcs}/nsynth-tfrecords/**'])[0].metadata_list


def test_dataflow_options_its_runner_refuses_are_one_line(gcs, tiny_demo):
  """Beam checks the runner's options when the pipeline is built: a project
  id it cannot take is our one line, not Beam's traceback."""
  with pytest.raises(job_lib.JobInputError) as error:
    nsynth_tfrecords.run([
        f'--input={tiny_demo / "nsynth-test"}', f'--output_dir={gcs}/out',
        '--runner=DataflowRunner', '--project=PROJECT',
        '--region=us-central1', f'--temp_location={gcs}/tmp',
        '--dry_run=True', '--embedding=none'])
  message = str(error.value)
  assert message.startswith('the DataflowRunner options: ')
  assert 'Invalid Project ID (PROJECT)' in message and '\n' not in message


def copy_to(local_dir, url):
  """A local directory tree copied to `url` through tf.io.gfile."""
  import tensorflow as tf
  for root, _, names in os.walk(local_dir):
    for name in names:
      relative = os.path.relpath(os.path.join(root, name), local_dir)
      target = f'{url}/{relative}'
      tf.io.gfile.makedirs(target.rsplit('/', 1)[0])
      tf.io.gfile.copy(os.path.join(root, name), target)


@pytest.mark.slow
def test_the_trainer_export_and_predict_run_on_a_remote_file_system(
    tiny_tfrecords, tiny_demo):
  """TensorFlow's own GCS file system has its endpoint compiled in and cannot
  be pointed at an emulator (BUILD_NOTES.md). Its in-memory file system,
  ram://, takes the same way: tf.io.gfile and tf.data, and every decision
  the code makes for a path that is not local (no lock, no local cache). A
  dataset version there is trained on, read back by the report, exported
  for TF Serving, and the export answers nsynth-predict's library."""
  import tensorflow as tf

  from serving import exporter
  from serving import predictor
  from trainer import train
  from trainer.train_config import TrainConfig
  version = f'ram://bucket/tfrecords/{tiny_tfrecords.name}'
  copy_to(tiny_tfrecords, version)
  job_dir = 'ram://bucket/jobs/run-1'
  reports = train.train(TrainConfig(data_dir='ram://bucket/tfrecords',
                                    job_dir=job_dir, model='stats_mlp',
                                    epochs=2))
  assert set(reports) == {'train', 'valid', 'test'}
  for name in ('checkpoints/best.keras', 'history.csv', 'finished.json',
               'eval/valid_metrics.json'):
    assert tf.io.gfile.exists(f'{job_dir}/{name}'), name
  with tf.io.gfile.GFile(f'{job_dir}/job_config.json') as f:
    assert json.load(f)['data_dir'] == version   # the version it read

  exported = exporter.export_job(job_dir, 'ram://bucket/exports')
  assert exported == 'ram://bucket/exports/nsynth_instrument/1'
  model = predictor.Predictor(
      predictor.resolve_export('ram://bucket/exports/nsynth_instrument'))
  note = sorted((tiny_demo / 'nsynth-test' / 'audio').glob('*.wav'))[0]
  [prediction] = model.predict([str(note)])
  assert prediction.error is None
  assert prediction.family in manifest_lib.read(version).vocabulary.families


def test_a_remote_directory_is_held_by_a_claim_object(tmp_path):
  """Object stores have no lock: each run writes a claim of its own, then
  lists the claims, so that a second run refuses, naming the first; a
  killed run's claim (no release) names what to remove."""
  import tensorflow as tf

  from nsynth_common import directory_lock
  directory = f'ram://bucket/claimed-{tmp_path.name}'
  with directory_lock.DirectoryLock(directory, '--job_dir'):
    with pytest.raises(directory_lock.DirectoryLockedError) as error:
      with directory_lock.DirectoryLock(directory, '--job_dir'):
        pass
    assert f'pid {os.getpid()}' in str(error.value)
    assert 'is claimed by another run' in str(error.value)
    # The refused run's claim went with it: only the first one's is there.
    assert len(tf.io.gfile.listdir(
        f'{directory}/{directory_lock.CLAIMS_DIR}')) == 1
  with directory_lock.DirectoryLock(directory, '--job_dir'):
    pass   # Released: the next run goes on.

  killed = f'{directory}/{directory_lock.CLAIMS_DIR}/20261205T000000Z-dead.json'
  with tf.io.gfile.GFile(killed, 'w') as f:
    f.write('{"pid": 4242, "host": "worker-3", "started": "then", '
            '"command": "nsynth-train"}')
  with pytest.raises(directory_lock.DirectoryLockedError,
                     match=f'pid 4242 on worker-3.*if that run was killed, '
                           f'remove {killed}'):
    with directory_lock.DirectoryLock(directory, '--job_dir'):
      pass
