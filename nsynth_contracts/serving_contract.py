"""What an export promises its callers, carried inside the export itself.

An export answers audio prepared one way: resampled to its feature rate,
cut into clips of its length, windows of its hop, a recording no longer than
its limit, WAV bytes of the encodings its graph decodes, and answers named
in its label vocabulary. Whoever prepares audio for it (nsynth-predict,
nsynth-client, the phrase report) reads these from the export they call,
never from this project's defaults: an export made with other parameters
would otherwise be fed wrongly prepared audio without a word.

The contract travels as one JSON document, answered by the export's
`serving_contract` signature (serving.signatures), so that a client of a
remote TF Serving reads it through the same Predict API as the answers.

Usage:
  contract = ServingContract.from_json(text, where='--model exports/x/1')
  contract.feature_params.sample_rate_hz
"""

import dataclasses
import json
import math

from nsynth_common import dataclass_json
from nsynth_contracts import audio_limits
from nsynth_contracts import feature_params as feature_params_lib
from nsynth_contracts import labels
from nsynth_contracts import window_params as window_params_lib

# Bumped when a field changes meaning; a reader refuses versions it does not
# know rather than guess.
CONTRACT_VERSION = 2
# The most a contract's JSON may hold: a few hundred bytes in practice.
MAX_CONTRACT_BYTES = 2**16


class ContractError(ValueError):
  """An export carries no contract this code can read; the message names
  where it came from and what is wrong, in one line."""


@dataclasses.dataclass(frozen=True)
class ServingContract:
  """The parameters an export was made with, and what its graph accepts."""
  feature_params: feature_params_lib.FeatureParams
  windows: window_params_lib.WindowParams
  vocabulary: labels.LabelVocabulary
  # The WAV encodings (wav_header.WavHeader.encoding, e.g. 'pcm16') that the
  # WAV signatures decode in the graph, at feature_params' rate only; audio
  # of any other kind goes to the float signatures as decoded samples.
  wav_encodings: tuple[str, ...]

  def accepts_wav(self, encoding: str, sample_rate_hz: int) -> bool:
    """Whether the WAV signatures decode such a file's bytes themselves."""
    return (encoding in self.wav_encodings and
            sample_rate_hz == self.feature_params.sample_rate_hz)

  def max_windows(self) -> int:
    """The most windows a recording the export accepts is cut into."""
    return self.windows.max_windows(self.feature_params)

  # As JSON: versioned, its vocabulary as labels.LabelVocabulary writes it.
  def to_json(self) -> str:
    return json.dumps({
        'contract_version': CONTRACT_VERSION,
        'feature_params': dataclass_json.to_json(self.feature_params),
        'window_params': dataclass_json.to_json(self.windows),
        'label_vocabulary': self.vocabulary.to_json(),
        'wav_encodings': list(self.wav_encodings),
    }, sort_keys=True)

  @classmethod
  def from_json(cls, text: str | bytes, where: str) -> 'ServingContract':
    """Parses and checks a contract; `where` names its source in errors.

    Raises:
      ContractError: not JSON, another version, a field missing, unknown or
        of the wrong type, or a value no audio can be prepared for. The
        message never quotes the document (it may come from a server).
    """
    if len(text) > MAX_CONTRACT_BYTES:
      raise ContractError(f'{where}: its contract is larger than '
                          f'{MAX_CONTRACT_BYTES} bytes')
    try:
      data = json.loads(text)
    except (ValueError, RecursionError):
      raise ContractError(f'{where}: its contract is not JSON') from None
    if not isinstance(data, dict):
      raise ContractError(f'{where}: its contract is not a JSON object')
    try:
      dataclass_json.refuse_unknown(data, _JSON_FIELDS,
                                    f'{where}: its contract')
    except dataclass_json.FieldError as e:
      raise ContractError(str(e)) from None
    version = data.get('contract_version')
    if version != CONTRACT_VERSION:
      raise ContractError(
          f'{where}: its contract has version '
          f'{version if isinstance(version, int) else "(none)"}; this code '
          f'reads version {CONTRACT_VERSION}')
    contract = cls(
        _fields(feature_params_lib.FeatureParams,
                data.get('feature_params'), f'{where}: feature_params'),
        _fields(window_params_lib.WindowParams, data.get('window_params'),
                f'{where}: window_params'),
        _vocabulary(data.get('label_vocabulary'), where),
        _encodings(data.get('wav_encodings'), where))
    _check_sizes(contract, where)
    return contract


# Every field of a contract's JSON.
_JSON_FIELDS = ('contract_version', 'feature_params', 'window_params',
                'label_vocabulary', 'wav_encodings')


def _fields(cls, values, where: str):
  """`cls` read strictly (nsynth_common.dataclass_json), a frozen dataclass
  of numbers, each checked to be finite (or None where it may be), positive
  where it sizes or times something."""
  if not isinstance(values, dict):
    raise ContractError(f'{where} is missing')
  try:
    instance = dataclass_json.from_json(cls, values, where)
  except dataclass_json.FieldError as e:
    raise ContractError(str(e)) from None
  for field in dataclasses.fields(cls):
    value = getattr(instance, field.name)
    if value is None:
      continue
    if not math.isfinite(value):
      raise ContractError(f'{where}.{field.name} is not a finite number')
    if value <= 0 and field.name not in _MAY_BE_ZERO_OR_LESS:
      raise ContractError(f'{where}.{field.name} must be positive')
  rate = getattr(instance, 'sample_rate_hz', None)
  limits = audio_limits.DEFAULT_LIMITS
  if rate is not None and not (limits.min_sample_rate_hz <= rate <=
                               limits.max_sample_rate_hz):
    raise ContractError(f'{where}.sample_rate_hz {rate} is outside '
                        f'{limits.min_sample_rate_hz}..'
                        f'{limits.max_sample_rate_hz}')
  return instance


# The most a contract may ask audio to be prepared as: what a caller
# allocates for a note and decodes of a recording follows from these.
MAX_CLIP_SECONDS = 60.0
MAX_RECORDING_SECONDS = 7200.0


def _check_sizes(contract: 'ServingContract', where: str) -> None:
  """Sizes that fit each other and a caller's memory: a contract asking for
  10 million seconds a clip is no export's (a client would allocate it)."""
  params, windows = contract.feature_params, contract.windows
  clip = params.clip_seconds * params.sample_rate_hz
  for wrong, words in (
      (params.clip_seconds > MAX_CLIP_SECONDS,
       f'feature_params: clip_seconds is over {MAX_CLIP_SECONDS:g}'),
      (windows.max_seconds > MAX_RECORDING_SECONDS,
       f'window_params: max_seconds is over {MAX_RECORDING_SECONDS:g}'),
      (windows.hop_seconds > params.clip_seconds,
       'window_params: hop_seconds is longer than a clip'),
      (max(params.fft_length_samples, params.hop_length_samples,
           windows.sound_frame_samples) > clip,
       'a frame or hop is longer than a clip'),
      (params.num_mfcc > params.num_mel_bands or params.num_mel_bands >
       params.fft_length_samples // 2 + 1,
       'feature_params: more coefficients or bands than the FFT gives'),
      (windows.min_repeat_lag_samples > windows.max_repeat_lag_samples,
       'window_params: min_repeat_lag_samples is over the max')):
    if wrong:
      raise ContractError(f'{where}: {words}')


# Fields that are levels or offsets, not sizes: any finite value.
_MAY_BE_ZERO_OR_LESS = ('mel_min_hz', 'silence_threshold_dbfs')


def _vocabulary(entries, where: str) -> labels.LabelVocabulary:
  try:
    return labels.LabelVocabulary.from_json(entries)
  except (ValueError, KeyError, TypeError, AttributeError):
    raise ContractError(f'{where}: its label_vocabulary is not NSynth '
                        f'families in label id order') from None


def _encodings(values, where: str) -> tuple[str, ...]:
  if not isinstance(values, list) or not all(
      isinstance(v, str) and v.isidentifier() for v in values):
    raise ContractError(f'{where}: its wav_encodings are not a list of '
                        f'encoding names')
  return tuple(values)
