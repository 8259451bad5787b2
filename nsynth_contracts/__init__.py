"""Contracts shared by the Beam job, the trainer and the serving export.

Each contract is defined once here and imported everywhere else; changing
one changes what a dataset or an export holds, or what input is accepted.
What every command merely shares (logs, errors, files, locks) is one floor
below, in nsynth_common.

Features and what a record holds:
  feature_params, features     - the MFCCs (NumPy parameters; TensorFlow)
  representation               - the interface of a pretrained representation
  representation_kinds         - the kinds there are, and the default ones
  musicnn_representation, musicnn_architecture, musicnn_weights,
  musicnn_network, musicnn_layers - musicnn, the built-in kind
  precision                    - the arithmetic the networks run in
  schema                       - the tf.train.Example layout and parse spec
  labels                       - NSynth's families and sources, the vocabulary
Inputs:
  examples_json                - NSynth's examples.json, parsed strictly, and
                                 the split a directory's name gives
  recordings_layout            - a directory of labelled recordings
  labelled_recordings          - reading one (labels.json as examples.json)
Datasets:
  manifest                     - manifest.json beside the TFRecords
  dataset_versions             - write-once versions, the newest complete one
  outcomes                     - every outcome of a note, counted once
  stable_random                - splits and draws from a key alone
Audio in and out:
  audio_limits, wav_header, file_safety, audio_decoding - what audio may be,
                                 and the one decoder
  audio                        - WAV encoding
  window_params, windows       - long recordings as 4 s windows, one answer
Trained models and exports:
  clip_features                - a model's inputs computed from raw clips
  serving_contract             - what an export promises its callers
"""

__version__ = '0.1.0'
