"""manifest.json, read by the one strict reader: the format of every
manifest written so far reads and writes back byte for byte, and whatever
the format does not hold is refused naming the field.

tests/data/manifest_v3.json was assembled from manifests the Beam job wrote
before the reader (musicnn's representation, --recordings, --augment_copies),
its statistics cut to three values.
"""

import copy
import json
import pathlib

import pytest

from nsynth_contracts import manifest as manifest_lib
from nsynth_contracts import outcomes

WRITTEN = pathlib.Path(__file__).parent / 'data' / 'manifest_v3.json'
TEXT = WRITTEN.read_text()


def test_a_written_manifest_reads_and_writes_back_byte_for_byte():
  manifest = manifest_lib.Manifest.from_json(json.loads(TEXT))
  assert manifest.dumps() == TEXT
  assert manifest.accounting.recordings.windows_written == {'train': 1079}
  assert manifest.augmentation.ranges['gain_db'] == [-12.0, 6.0]
  assert manifest.split_method.inputs == tuple(
      json.loads(TEXT)['split_method']['inputs'])


def _edited(path: str, value):
  data = copy.deepcopy(json.loads(TEXT))
  *parents, name = path.split('/')
  at = data
  for parent in parents:
    at = at[int(parent)] if isinstance(at, list) else at[parent]
  if value is KeyError:
    del at[name]
  else:
    at[name] = value
  return data


@pytest.mark.parametrize('path,value,message', [
    ('warp', 1, 'the manifest: 1 unknown field (warp)'),
    ('filters/also', 1, 'filters: 1 unknown field (also)'),
    ('splits/train/extra', 1, 'splits.train: 1 unknown field (extra)'),
    # Once dropped without a word.
    ('accounting/recordings/extra', 1,
     'accounting.recordings: 1 unknown field (extra)'),
    ('representations/0/params/hop', 1,
     'musicnn parameters: 1 unknown field (hop)'),
    ('representations/0/colour', 1,
     'representations[0]: 1 unknown field (colour)'),
    ('filters/max_notes_per_family', '3',
     'filters.max_notes_per_family is not an integer'),
    ('split_method/inputs', 'a,b', 'split_method.inputs is not a list'),
    ('feature_params/num_mfcc', 20.5, 'feature_params.num_mfcc is not an '
                                      'integer'),
    ('normalization/mean', [0.0, 'x'], 'normalization.mean[1] is not a '
                                       'number'),
    ('split_method/description', KeyError,
     'split_method.description is missing'),
    ('accounting/read', 1, 'accounting.read disagrees with the outcomes it '
                           'sums'),
    ('augmentation/copies', True, 'augmentation.copies is not an integer'),
    ('audio_samples', 64000.0, 'audio_samples is not an integer'),
])
def test_what_the_format_does_not_hold_is_refused_naming_it(path, value,
                                                            message):
  with pytest.raises(ValueError) as error:
    manifest_lib.Manifest.from_json(_edited(path, value))
  assert str(error.value) == message


def test_the_reader_names_the_file_too(tmp_path):
  (tmp_path / 'manifest.json').write_text(json.dumps(_edited(
      'filters/also', 1)))
  with pytest.raises(manifest_lib.ManifestError) as error:
    manifest_lib.read(str(tmp_path))
  assert str(error.value) == (f'{tmp_path}/manifest.json is not a valid '
                              f'manifest: filters: 1 unknown field (also)')


def test_accounting_survives_json_whole():
  accounting = manifest_lib.Manifest.from_json(json.loads(TEXT)).accounting
  assert outcomes.Accounting.from_json(json.loads(json.dumps(
      accounting.to_json()))) == accounting
