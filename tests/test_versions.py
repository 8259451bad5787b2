"""Dataset versions in an output directory: which are complete, what
--overwrite may delete, and what it never touches (links, a version given as
the output directory, files of a person's). Built by hand, no Beam job: the
decisions are those of versioned_output and dataset_versions alone."""

import json
import os
import pathlib

import pytest

from beam_pipelines import output
from beam_pipelines import versioned_output
from nsynth_common import storage
from nsynth_contracts import dataset_versions
from nsynth_contracts import manifest as manifest_lib

SHARD = 'test-00000-of-00001.tfrecord.gz'
DEAD_LETTERS = 'dead_letters/dead_letters-00000-of-00001.jsonl'


def write_dataset(directory, files=(SHARD, DEAD_LETTERS)):
  """A complete dataset as the job leaves one: its files, then a manifest
  listing them."""
  directory.mkdir(parents=True, exist_ok=True)
  for name in files:
    (directory / name).parent.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(f'records of {directory.name}')
  (directory / 'manifest.json').write_text(json.dumps(
      {'format_version': manifest_lib.FORMAT_VERSION, 'files': list(files)}))
  return directory


def everything(root):
  return sorted(str(p.relative_to(root)) for p in root.rglob('*'))


def test_a_link_named_like_a_version_is_neither_read_nor_deleted_through(
    tmp_path):
  out = tmp_path / 'out'
  old = write_dataset(out / '20200101-000000-aaaaaa')
  archive = write_dataset(tmp_path / 'archive')
  link = out / '20990101-000000-bbbbbb'   # newer than any version
  os.symlink(archive, link)
  before = everything(archive)

  assert dataset_versions.resolve_data_dir(str(out)) == str(old)
  version = versioned_output.start(str(out), overwrite=True)
  assert [d.directory for d in version.replaces] == [str(old)]
  assert version.links == (str(link),)
  assert f'{link}' in version.unfinished_line()
  versioned_output.replace_older(version)
  assert everything(archive) == before
  assert not old.exists()


def test_a_link_below_an_older_version_stops_overwrite_before_any_work(
    tmp_path):
  out = tmp_path / 'out'
  old = write_dataset(out / '20200101-000000-aaaaaa')
  elsewhere = tmp_path / 'my-notes'
  (elsewhere).mkdir()
  (elsewhere / 'dead_letters-00000-of-00001.jsonl').write_text('mine')
  (old / 'dead_letters' / 'dead_letters-00000-of-00001.jsonl').unlink()
  (old / 'dead_letters').rmdir()
  os.symlink(elsewhere, old / 'dead_letters')
  before = everything(tmp_path)

  with pytest.raises(output.OutputDirError,
                     match=f'{old / "dead_letters"} is a link or not what '
                     f'this job writes there; nothing was deleted'):
    versioned_output.start(str(out), overwrite=True)
  assert everything(tmp_path) == before


def test_deleting_never_goes_through_a_link_that_appears_later(tmp_path):
  """The check at the start is not all: the delete itself walks the path
  without following links, so a link made after the check still holds."""
  out = tmp_path / 'out'
  (out / 'v' / 'dead_letters').mkdir(parents=True)
  elsewhere = tmp_path / 'elsewhere'
  elsewhere.mkdir()
  (elsewhere / 'f.jsonl').write_text('mine')
  (out / 'v' / 'dead_letters').rmdir()
  os.symlink(elsewhere, out / 'v' / 'dead_letters')
  with pytest.raises(OSError):
    storage.LocalFiles().remove_file(str(out / 'v' / 'dead_letters' /
                                         'f.jsonl'), str(out))
  assert (elsewhere / 'f.jsonl').read_text() == 'mine'


def test_a_version_is_not_an_output_directory(tmp_path):
  out = tmp_path / 'out'
  old = write_dataset(out / '20200101-000000-aaaaaa')
  before = everything(out)
  with pytest.raises(output.OutputDirError,
                     match=f'--output_dir {old} is named as a version of a '
                     f'dataset is.*--output_dir={out}'):
    versioned_output.start(str(old), overwrite=True)
  assert everything(out) == before
  assert dataset_versions.resolve_data_dir(str(out)) == str(old)


def test_a_dataset_from_before_versions_is_older_than_any_version(tmp_path):
  """An --overwrite killed right after its new manifest leaves both: the
  version is what readers take, and the next --overwrite replaces both."""
  out = write_dataset(tmp_path / 'out')
  assert dataset_versions.resolve_data_dir(str(out)) == str(out)
  newer = write_dataset(out / '20200101-000000-aaaaaa')
  assert dataset_versions.resolve_data_dir(str(out)) == str(newer)
  version = versioned_output.start(str(out), overwrite=True)
  assert [d.directory for d in version.replaces] == [str(newer), str(out)]
  versioned_output.replace_older(version)
  assert os.listdir(out) == [os.path.basename(version.directory)]


def test_a_dataset_from_before_versions_is_replaced_only_until_its_release(
    tmp_path):
  out = write_dataset(tmp_path / 'out')
  assert dataset_versions.replaces_before_versions('0.1.0')
  assert not dataset_versions.replaces_before_versions('0.2.0')
  assert dataset_versions.replaces_before_versions() == (
      dataset_versions.replaces_before_versions(
          __import__('nsynth_contracts').__version__))
  before = everything(out)
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(dataset_versions, 'replaces_before_versions',
                  lambda: False)
    with pytest.raises(output.OutputDirError,
                       match='holds a dataset written before versions'):
      versioned_output.start(str(out), overwrite=True)
  assert everything(out) == before
  assert dataset_versions.resolve_data_dir(str(out)) == str(out)


def test_a_replaced_version_holding_a_persons_file_is_not_called_unfinished(
    tmp_path):
  out = tmp_path / 'out'
  old = write_dataset(out / '20200101-000000-aaaaaa')
  (old / 'dead_letters' / 'my_notes.txt').write_text('mine')
  replacing = versioned_output.start(str(out), True)
  new = write_dataset(pathlib.Path(replacing.directory))
  versioned_output.replace_older(replacing)
  killed = out / '20990101-000000-cccccc'
  killed.mkdir()
  (killed / SHARD).write_text('half')

  version = versioned_output.start(str(out), overwrite=True)
  assert version.unfinished == (str(killed),)
  assert version.kept == (str(old),)
  assert [d.directory for d in version.replaces] == [str(new)]
  lines = version.unfinished_line().splitlines()
  assert lines[0].startswith(f'1 unfinished version in {out}')
  assert str(old) not in lines[0] and str(old) in lines[1]


def test_readers_list_versions_on_a_remote_file_system(tmp_path):
  """TensorFlow's ram:// lists one level without a '/' after directories
  and by name prefix; the same versions are found as on a local disk."""
  import tensorflow as tf
  root = f'ram://versions-{tmp_path.name}'
  for name, complete in (('20200101-000000-aaaaaa', True),
                         ('20210101-000000-aaaaaa', True),
                         ('20220101-000000-aaaaaa', False)):
    tf.io.gfile.makedirs(f'{root}/{name}/dead_letters')
    with tf.io.gfile.GFile(f'{root}/{name}/{SHARD}', 'w') as f:
      f.write('records')
    if complete:
      with tf.io.gfile.GFile(f'{root}/{name}/manifest.json', 'w') as f:
        f.write('{}')
  found = dataset_versions.find(root)
  assert found.complete == (f'{root}/20210101-000000-aaaaaa',
                            f'{root}/20200101-000000-aaaaaa')
  assert found.incomplete == (f'{root}/20220101-000000-aaaaaa',)
  assert dataset_versions.resolve_data_dir(root) == found.complete[0]


def test_a_manifest_nested_200000_levels_deep_is_one_line(tmp_path):
  (tmp_path / 'manifest.json').write_text('[' * 200_000 + ']' * 200_000)
  with pytest.raises(manifest_lib.ManifestError,
                     match='is nested deeper than any manifest is'):
    manifest_lib.read(str(tmp_path))
