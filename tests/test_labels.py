"""The label vocabulary follows from the filters, never from the data."""

import pytest

from nsynth_contracts import labels


def test_default_vocabulary_is_nine_families_in_nsynth_order():
  vocabulary = labels.LabelVocabulary.from_filters()
  assert vocabulary.families == ('bass', 'brass', 'flute', 'guitar',
                                 'keyboard', 'mallet', 'organ', 'reed',
                                 'string')
  assert vocabulary.label_id('string') == 8
  assert vocabulary.family(3) == 'guitar'


def test_synth_lead_needs_the_synthetic_source():
  with_synthetic = labels.LabelVocabulary.from_filters(
      ['acoustic', 'electronic', 'synthetic'], ['vocal'])
  assert 'synth_lead' in with_synthetic.families
  assert with_synthetic.label_id('synth_lead') == 9


def test_dropped_families_leave_the_rest_in_nsynth_order():
  vocabulary = labels.LabelVocabulary.from_filters(
      dropped_families=['vocal', 'bass'])
  assert vocabulary.families[:2] == ('brass', 'flute')
  assert vocabulary.label_id('brass') == 0


@pytest.mark.parametrize('sources,families,message', [
    (['wooden'], [], 'Unknown NSynth sources'),
    (['acoustic'], ['kazoo'], 'Unknown NSynth families'),
    ([], [], 'At least one source'),
])
def test_bad_filters_are_named(sources, families, message):
  with pytest.raises(ValueError, match=message):
    labels.LabelVocabulary.from_filters(sources, families)


def test_unknown_family_and_id_raise_keyerror_naming_them():
  vocabulary = labels.LabelVocabulary.from_filters()
  with pytest.raises(KeyError, match='vocal'):
    vocabulary.label_id('vocal')
  with pytest.raises(KeyError, match='12'):
    vocabulary.family(12)


def test_round_trips_through_json():
  vocabulary = labels.LabelVocabulary.from_filters()
  assert labels.LabelVocabulary.from_json(vocabulary.to_json()) == vocabulary
