"""What the commands that read a job's model say about a job whose training
has not finished: still running, or stopped before its last epoch."""

import json

import pytest

from nsynth_common import directory_lock
from trainer import job_layout


def a_job(tmp_path, epochs_done=2, finished=False):
  job_dir = tmp_path / 'job'
  job_dir.mkdir()
  (job_dir / job_layout.JOB_CONFIG).write_text(json.dumps(
      {'data_dir': 'd', 'model': 'stats_mlp', 'train_split': 'train',
       'epochs': 30}))
  (job_dir / job_layout.HISTORY_CSV).write_text(
      'epoch,loss\n' + ''.join(f'{e},1.0\n' for e in range(epochs_done)))
  if finished:
    (job_dir / job_layout.FINISHED).write_text('{"epochs_trained": 30}')
  return job_dir


def test_a_job_still_training_is_said_to_be_mid_training(tmp_path):
  job_dir = a_job(tmp_path)
  with directory_lock.DirectoryLock(str(job_dir), '--job_dir'):
    said = job_layout.training_state(str(job_dir))
  assert said.startswith(f'--job_dir {job_dir} is still being trained (pid ')
  assert 'best so far, after 2 of 30 epochs' in said
  # Asking took no lock: the run goes on holding it, or a new one may.
  with directory_lock.DirectoryLock(str(job_dir), '--job_dir'):
    pass


def test_a_job_whose_run_stopped_is_said_to_be_unfinished(tmp_path):
  job_dir = a_job(tmp_path, epochs_done=5)
  assert job_layout.training_state(str(job_dir)) == (
      f'--job_dir {job_dir} did not finish training (stopped after 5 of 30 '
      f'epochs): its model is the best of those; run nsynth-train with its '
      f'settings again to finish it')


def test_a_directory_without_a_run_is_refused_not_called_unfinished(
    tmp_path):
  with pytest.raises(job_layout.JobDirError, match='job_config.json does '
                     'not exist'):
    job_layout.training_state(str(tmp_path))


def test_a_finished_job_says_nothing(tmp_path):
  job_dir = a_job(tmp_path, epochs_done=30, finished=True)
  assert job_layout.training_state(str(job_dir)) is None


def test_a_remote_job_with_a_claim_is_still_training(tmp_path):
  job_dir = f'ram://jobs-{tmp_path.name}/job'
  assert directory_lock.holder(job_dir) is None
  with directory_lock.DirectoryLock(job_dir, '--job_dir'):
    assert directory_lock.holder(job_dir).startswith(
        f'a run whose claim is {job_dir}/{directory_lock.CLAIMS_DIR}/')
  assert directory_lock.holder(job_dir) is None
