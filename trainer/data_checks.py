"""Reading every record once, to name the one that cannot be trained on.

`validate_split` reads every record of a split before training and names
the first record that cannot be trained on: unreadable (and where), of
another schema, shape or vocabulary than the manifest's, or holding NaN,
Inf or a magnitude no such feature can have (`magnitude_bounds`). When a
pipeline fails without it (--novalidate_data), `data_error` runs the same
checks to say which file and record is at fault.
"""

import collections
import posixpath
import re

import numpy as np
import tensorflow as tf

from nsynth_contracts import manifest as manifest_lib
from nsynth_contracts import schema
from trainer.input_pipeline import LABEL_OUTSIDE
from trainer.input_pipeline import DataError

AUTOTUNE = tf.data.AUTOTUNE
# Neither MFCCs nor waveforms come near this magnitude, so a value beyond it
# is damage even when finite (a 1e30 overflows the loss as NaN does): MFCCs
# of audio within the Beam job's +-4 sample bound stay within a few thousand
# (decibels through an orthonormal DCT of 128 bands), samples within 4. A
# representation's bound is its kind's (max_abs_value).
MAX_MFCC_OR_AUDIO_MAGNITUDE = 1e6
# Records per parse while validating: about 16 MB of 126 x 128 MFCCs.
_VALIDATION_BATCH = 256
# What TensorFlow wraps around the reason an op failed: graph and op names,
# and the Python stack of the node, none of which a user can act on.
_TF_WRAPPING = re.compile(r'\{\{function_node [^}]*\}\}|\[\[[^\]]*\]\]|'
                          r'\[Op:[^\]]*\]( name:.*)?|Graph execution error:')
# Bytes of TFRecord framing around each record: length, its CRC, data CRC.
_RECORD_FRAMING = 8 + 4 + 4


def check_statistics(manifest: manifest_lib.Manifest, where: str) -> None:
  """The manifest's normalisation statistics, which every model's input is
  scaled by: one per coefficient (or value) of what they describe, finite,
  no standard deviation below 0, and no magnitude a feature cannot have.

  Raises:
    DataError: naming the manifest, the statistics and the first bad value.
  """
  described = [('normalization', manifest.normalization,
                manifest.mfcc_shape[1], MAX_MFCC_OR_AUDIO_MAGNITUDE)] + [
                    (f'representations[{r.key}].normalization',
                     r.normalization, r.size, r.representation.max_abs_value)
                    for r in manifest.representations if r.normalization]
  for name, statistics, size, bound in described:
    for field in ('mean', 'std'):
      values = np.asarray(getattr(statistics, field), np.float64)
      if values.shape != (size,):
        raise DataError(f'{where}: its {name} {field} has {values.size} '
                        f'values for {size}')
      bad = ~np.isfinite(values) | (np.abs(values) > bound)
      if field == 'std':
        bad |= values < 0
      if bad.any():
        index = int(np.argmax(bad))
        value = float(values[index])
        raise DataError(
            f'{where}: its {name} {field} [{index}] is {value!r}, '
            f'which no statistic of these features can be (finite, within '
            f'{bound:g}'
            + (', not negative' if field == 'std' else '') + '): the '
            'manifest is damaged; write the dataset again with '
            'nsynth-tfrecords')


def tf_reason(error: tf.errors.OpError) -> str:
  """TensorFlow's reason for a failed op in one line, unwrapped."""
  for line in _TF_WRAPPING.sub('', error.message or '').splitlines():
    line = line.strip()
    if line and not line.startswith(('Detected at node', 'File "')):
      return line
  return type(error).__name__


def _validation_spec(manifest: manifest_lib.Manifest, any_size: bool
                     ) -> dict:
  """The schema's parse spec; with `any_size`, the float features ragged,
  so that a record of another size is ours to name, not a parse error.
  Ragged parsing costs twice the CPU time of the whole read, so it is
  kept for naming a record once the exact parse has failed."""
  spec = schema.feature_spec(manifest.mfcc_shape, manifest.audio_samples,
                             representation_sizes=manifest.representation_sizes)
  for key in (schema.MFCC, schema.AUDIO):
    if any_size and key in spec:
      spec[key] = tf.io.RaggedFeature(tf.float32, row_splits_dtype=tf.int64)
  return spec


def _summaries(files: list[str], manifest: manifest_lib.Manifest,
               any_size: bool = False) -> tf.data.Dataset:
  """Per batch of one file's records: the scalars a check needs, the
  file's index, and for each float feature whether all its values are
  finite (and, with `any_size`, how many there are). Parsing and the
  finiteness reduction run in tf.data's threads, traced once for all
  files; Python sees no floats."""
  spec = _validation_spec(manifest, any_size)
  bounds = magnitude_bounds(manifest)
  paths = tf.constant(files)

  def batches(index):
    return tf.data.TFRecordDataset(
        paths[index], compression_type=manifest.tf_compression_type).batch(
            _VALIDATION_BATCH).map(lambda serialized: (serialized, index))

  def summarize(serialized, index):
    parsed = tf.io.parse_example(serialized, spec)
    summary = {key: parsed[key] for key in (
        schema.LABEL, schema.MFCC_SHAPE, schema.FAMILY, schema.NOTE_STR)}
    summary['file'] = index
    for key in _float_features(manifest):
      if key in parsed:
        values = parsed[key]
        if any_size and key in (schema.MFCC, schema.AUDIO):
          summary[key + '_size'] = values.row_lengths()
        summary[key + '_finite'] = tf.reduce_all(
            tf.abs(values) <= bounds[key],   # False for NaN too
            axis=list(range(1, values.shape.rank)))
    return summary

  return tf.data.Dataset.range(len(files)).flat_map(batches).map(
      summarize, num_parallel_calls=AUTOTUNE,
      deterministic=True).prefetch(AUTOTUNE)


def _float_features(manifest: manifest_lib.Manifest) -> tuple[str, ...]:
  return (schema.MFCC, schema.AUDIO, *manifest.representation_sizes)


def magnitude_bounds(manifest: manifest_lib.Manifest) -> dict[str, float]:
  """{float feature key: the largest magnitude a sound record holds}."""
  return {schema.MFCC: MAX_MFCC_OR_AUDIO_MAGNITUDE,
          schema.AUDIO: MAX_MFCC_OR_AUDIO_MAGNITUDE,
          **{record.key: record.representation.max_abs_value
             for record in manifest.representations}}


def _record(path: str, index: int, note: bytes) -> str:
  """A record for a message: its file, its place there and its note name
  (shortened, with anything unprintable escaped)."""
  name = note.decode('utf-8', 'backslashreplace')[:80]
  return f'{path}, record {index + 1} ({name!r})'


def _batch_problem(batch: dict, start: int, path: str,
                   manifest: manifest_lib.Manifest) -> str | None:
  """What is wrong with the first bad record of one batch, or None."""
  frames, coefficients = manifest.mfcc_shape
  num_classes = manifest.vocabulary.num_classes
  labels = batch[schema.LABEL]
  families = np.array([f.encode() for f in manifest.vocabulary.families])
  named = families[np.clip(labels, 0, num_classes - 1)]
  # Sizes are counted only when read with any_size (exact parsing failed).
  mfcc_size = batch.get('mfcc_size', np.full(len(labels),
                                             frames * coefficients))
  audio_size = batch.get('audio_size', np.full(len(labels),
                                               manifest.audio_samples or 0))
  checks = [
      ((labels < 0) | (labels >= num_classes), lambda i: (
          f'label id {labels[i]} is outside the vocabulary '
          f'[0, {num_classes}) of the manifest')),
      ((batch[schema.MFCC_SHAPE] != [frames, coefficients]).any(axis=1),
       lambda i: (f'mfcc_shape {batch[schema.MFCC_SHAPE][i].tolist()} '
                  f'disagrees with the manifest\'s {[frames, coefficients]}')),
      (mfcc_size != frames * coefficients, lambda i: (
          f'mfcc holds {mfcc_size[i]} values, not the manifest\'s '
          f'{frames} x {coefficients}')),
      (named != batch[schema.FAMILY], lambda i: (
          f'a {batch[schema.FAMILY][i].decode(errors="replace")!r} note has '
          f'label id {labels[i]}, which the manifest\'s vocabulary calls '
          f'{named[i].decode()!r}: the vocabulary disagrees with the shards')),
  ]
  if 'audio_finite' in batch:
    checks.append((audio_size != manifest.audio_samples, lambda i: (
        f'audio holds {audio_size[i]} samples, not the manifest\'s '
        f'{manifest.audio_samples}')))
  bounds = magnitude_bounds(manifest)
  checks += [(~batch[key + '_finite'], lambda i, key=key: (
      f'{key} holds NaN, Inf or a magnitude beyond {bounds[key]:g}, which '
      f'no {key} can have: nothing can be learned from it; write the data '
      f'again with nsynth-tfrecords'))
             for key in _float_features(manifest) if key + '_finite' in batch]
  found = [(int(np.flatnonzero(bad)[0]), order)
           for order, (bad, _) in enumerate(checks) if bad.any()]
  if not found:
    return None
  i, order = min(found)  # The first bad record, and its first problem.
  return (f'{_record(path, start + i, batch[schema.NOTE_STR][i])}: '
          f'{checks[order][1](i)}')


def _unreadable(path: str, manifest: manifest_lib.Manifest) -> str | None:
  """Where reading `path` fails: the first unreadable record and its byte
  offset in the record stream, or None if it reads to its end."""
  readable, offset = 0, 0
  try:
    for record in tf.data.TFRecordDataset(
        path, compression_type=manifest.tf_compression_type):
      readable += 1
      offset += len(record.numpy()) + _RECORD_FRAMING
  except tf.errors.OpError:
    stream = ('of the decompressed data' if manifest.tf_compression_type
              else 'of the file')
    return (f'truncated or corrupted record in {path}: record '
            f'{readable + 1} (at byte {offset} {stream}) cannot be read; the '
            f'{readable} before it can')
  return None


def check_files(files: list[str], manifest: manifest_lib.Manifest
                ) -> collections.Counter:
  """Reads every record of these shards once and checks it.

  Returns:
    Their records per family name.

  Raises:
    DataError: naming the file, and the record where one can be named:
      unreadable (and where), of another schema, shape or size than the
      manifest's, a label outside its vocabulary or for another family, or
      NaN or Inf in a feature.
  """
  position = [0, 0]
  try:
    return _scan(files, manifest, position)
  except tf.errors.OpError as e:
    error = e
  # Read again from the file that failed (tf.data reads ahead, so it may be
  # a later one), parsing records of any size, to name file and record.
  for path in files[position[0]:]:
    here = [0, 0]
    try:
      _scan([path], manifest, here, any_size=True)
    except tf.errors.OpError as e:
      raise _read_error(e, path, here[1], manifest) from None
  raise _read_error(error, files[position[0]], position[1], manifest)


def _scan(files: list[str], manifest: manifest_lib.Manifest,
          position: list[int], any_size: bool = False
          ) -> collections.Counter:
  """check_files' reading, which keeps `position` (the index of the file
  being read, the records read from it) for the caller's messages."""
  families = collections.Counter()
  for batch in _summaries(files, manifest, any_size).as_numpy_iterator():
    if batch['file'] != position[0]:
      position[:] = [int(batch['file']), 0]
    problem = _batch_problem(batch, position[1], files[position[0]],
                             manifest)
    if problem:
      raise DataError(problem)
    families.update(f.decode(errors='replace') for f in batch[schema.FAMILY])
    position[1] += len(batch[schema.LABEL])
  return families


def _read_error(error: tf.errors.OpError, path: str, start: int,
                manifest: manifest_lib.Manifest) -> DataError:
  if isinstance(error, tf.errors.DataLossError):
    return DataError(_unreadable(path, manifest) or
                     f'truncated or corrupted record in {path} '
                     f'({tf_reason(error)})')
  return DataError(f'{path}: a record after the first {start} does not '
                   f'match the manifest\'s schema ({tf_reason(error)})')


def validate_split(files: list[str], manifest: manifest_lib.Manifest,
                   split: str) -> int:
  """Checks every record of a split (check_files) and its counts.

  Returns:
    The number of records.

  Raises:
    DataError: naming the file and record that cannot be trained on, or
      the split whose counts disagree with the manifest.
  """
  families = check_files(files, manifest)
  total = sum(families.values())
  summary = manifest.splits[split]
  if total != summary.num_examples:
    raise DataError(f'Split {split!r}: {len(files)} shards hold {total} '
                    f'records but the manifest says {summary.num_examples}')
  for family in sorted(set(families) | set(summary.families)):
    if families[family] != summary.families.get(family, 0):
      raise DataError(
          f'Split {split!r}: its shards hold {families[family]} {family} '
          f'records but the manifest says {summary.families.get(family, 0)}')
  return total


def find_problem(files: list[str], manifest: manifest_lib.Manifest
                 ) -> DataError | None:
  """The first problem validate_split finds in any split these files
  belong to, or None. For error paths: it reads every record."""
  names = {posixpath.basename(path): path for path in files}
  for split in manifest.splits:
    mine = [names[name] for name in map(posixpath.basename,
                                        manifest.split_files(split))
            if name in names]
    if mine:
      try:
        validate_split(mine, manifest, split)
      except DataError as e:
        return e
  return None


def data_error(error: tf.errors.OpError, files: list[str],
               manifest: manifest_lib.Manifest) -> DataError:
  """A DataError in our words for an error raised while reading records."""
  message = error.message or ''
  if LABEL_OUTSIDE in message:
    # The assertion's data: [path] [label id] [the id].
    where = [w.strip() for w in re.findall(
        r'\[([^\]]*)\]', message.split(LABEL_OUTSIDE, 1)[1])[:3]]
    detail = (f'{where[0]}: label id {where[2]}' if len(where) == 3
              else ', '.join(where))
    return DataError(f'{LABEL_OUTSIDE} {detail} (vocabulary of '
                     f'{manifest.vocabulary.num_classes} families)')
  return (find_problem(files, manifest) or
          DataError(f'cannot read the records: {tf_reason(error)}'))
