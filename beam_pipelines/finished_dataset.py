"""The dataset a pipeline wrote into its version: the manifest completed with
the files written, the accounting checked, and only then the manifest
written, the version's last file."""

import dataclasses
import json
import logging
import posixpath

from apache_beam.io.filesystem import BeamIOError

from beam_pipelines import output
from beam_pipelines import tfds_metadata
from beam_pipelines import tfrecord_sink
from nsynth_contracts import manifest as manifest_lib


class NothingWrittenError(ValueError):
  """Every note to featurize was dead-lettered; the message says how."""


def complete_manifest(version_dir: str) -> manifest_lib.Manifest:
  """The pipeline's draft manifest, completed with the list of the files it
  wrote (which only exists once its sinks have finished), and TFDS's
  metadata for uncompressed output. Nothing is written to manifest.json."""
  draft = posixpath.join(version_dir, output.MANIFEST_DRAFT)
  manifest = manifest_lib.Manifest.from_json(json.loads(
      output.files_for(draft).read_bytes(draft)))
  if manifest.compression == manifest_lib.NO_COMPRESSION:
    # The shards are known by now; split_files() finds them in `files`.
    manifest = dataclasses.replace(manifest, files=tuple(
        _written_files(version_dir)))
    shards = {split: [tfrecord_sink.count_records(posixpath.join(
        version_dir, name)) for name in manifest.split_files(split)]
              for split in manifest.splits}
    tfds_metadata.write(version_dir, manifest.project_version,
                        manifest.vocabulary.families, manifest.mfcc_shape,
                        manifest.audio_samples, manifest.representation_sizes,
                        shards)
  return dataclasses.replace(manifest,
                             files=tuple(_written_files(version_dir)))


def write_manifest(version_dir: str, manifest: manifest_lib.Manifest) -> None:
  """Writes manifest.json, which marks the version complete, whole
  (output.OutputFiles.write_whole), so a reader never opens half a
  manifest, nor finds a truncated one after a kill."""
  files = output.files_for(version_dir)
  files.write_whole(manifest_lib.manifest_path(version_dir),
                    manifest.dumps().encode('utf-8'))
  # The version is complete: a draft left behind is only untidy.
  try:
    files.remove_file(posixpath.join(version_dir, output.MANIFEST_DRAFT),
                      version_dir)
  except (OSError, BeamIOError) as e:
    logging.warning('Could not delete the draft manifest in %s (%s).',
                    version_dir, output.reason(e))


def _written_files(version_dir: str) -> list[str]:
  """The files the pipeline wrote (not its draft, nor Beam's temporary
  files), relative to the version."""
  return sorted(name for name in
                output.files_for(version_dir).files_under(version_dir)
                if not any(part.startswith(('.', 'beam-temp'))
                           for part in name.split('/')))


def check_accounting(manifest: manifest_lib.Manifest, notes: int,
                     to_featurize: int, recordings: int) -> None:
  """Every note and recording listed is accounted for, and some became an
  example.

  Raises:
    NothingWrittenError: every note to featurize was dead-lettered.
    RuntimeError: a note or recording went missing in the runner.
  """
  accounted = manifest.accounting.read
  if accounted != notes:
    raise RuntimeError(
        f'{notes} notes were read but {accounted} are accounted for as '
        f'written, filtered or dead-lettered; no dataset was written')
  _refuse_if_nothing_written(manifest, to_featurize)
  books = manifest.accounting.recordings
  recordings_accounted = books.read if books else 0
  if recordings_accounted != recordings:
    raise RuntimeError(
        f'{recordings} recordings were listed but '
        f'{recordings_accounted} are accounted for as windowed, filtered or '
        f'dead-lettered; no dataset was written')


def _refuse_if_nothing_written(manifest: manifest_lib.Manifest,
                               to_featurize: int) -> None:
  """A dataset of no example is no dataset: when every note to featurize
  was dead-lettered, something is wrong with all of them (or with the
  weights or the machine), and writing it would replace a good one."""
  accounting = manifest.accounting
  windows = accounting.recordings.windows_written if (
      accounting.recordings) else {}
  if to_featurize == 0 or sum(accounting.written.values()) + sum(
      windows.values()) > 0:
    return
  kinds = ', '.join(f'{kind} {count}'
                    for kind, count in accounting.dead_lettered.items())
  raise NothingWrittenError(
      f'none of the {to_featurize} notes to featurize became an '
      f'example (dead-lettered: {kinds}); no dataset was written, and '
      f'--output_dir was left as it was')
