"""Contracts shared by the Beam job, the trainer and the serving export.

Each contract is defined once here and imported everywhere else:
  features  - the MFCC computation (pure TensorFlow, core ops only)
  labels    - NSynth's families and sources, and the label vocabulary
  schema    - the tf.train.Example layout, writer and tf.data parse spec
  manifest  - the manifest.json written beside the TFRecords
"""

__version__ = '0.1.0'
