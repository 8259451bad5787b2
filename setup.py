"""NSynth instrument families: Beam features, Keras trainer, TF Serving export.

Beam workers (Dataflow, Flink, Spark) install the project from this file:
pass --setup_file=./setup.py to the Beam job.
"""

import re

import setuptools

with open('nsynth_contracts/__init__.py', encoding='utf-8') as f:
  VERSION = re.search(r"__version__ = '([^']+)'", f.read()).group(1)

# One pinned, mutually compatible stack (see BUILD_NOTES.md, "Stack"):
# tensorflow-serving-api must match TensorFlow's minor.
#
# install_requires is what the Beam job's workers need and nothing more:
# Dataflow, Flink and Spark workers install exactly this. The trainer, the
# serving tools and the demo renderer add their extras.
INSTALL_REQUIRES = [
    'tensorflow==2.21.0',
    # [gcp]: Beam's GCS file system, so --input and --output_dir take gs://.
    'apache-beam[gcp]==2.77.0',
    'absl-py>=2.1,<3',
    'numpy>=2.1,<3',
    'google-crc32c>=1.5,<2',   # C crc32c for TFRecord framing.
    'isal>=1.6,<2',            # ISA-L GZIP: 6x zlib's speed, same format.
    'soundfile>=0.12,<0.14',   # libsndfile, the audio decoder (in its wheels).
    'pedalboard>=0.9.26,<0.10',  # --augment_copies: the effects (C++).
    'soxr>=0.3,<2',            # resampling, and --augment_copies' speed change.
    'tqdm>=4.66,<5',           # the job's and the trainer's progress lines.
]

# scikit-learn computes the report's classification metrics. TensorBoard
# (the report's hparams and images) no longer comes with TensorFlow 2.21.
_TRAIN = ['matplotlib>=3.8,<4', 'scikit-learn>=1.3,<2',
          'tensorboard==2.21.0']
_SERVE = ['tensorflow-serving-api==2.21.0', 'tqdm>=4.66,<5',
          'matplotlib>=3.8,<4']  # nsynth-predict --plot
# The synthesis families (demo_data.synthesis): STK with its rawwaves, and
# the Faust compiler with its libraries; librosa's YIN checks every note.
_DEMO = ['pretty_midi>=0.2.10,<0.3', 'tqdm>=4.66,<5',
         'synthesistoolkit==0.0.1', 'dawdreamer==0.9.0',
         'librosa==0.10.2.post1']
# --compression=none also writes the files TensorFlow Datasets reads, with
# TFDS's own writer (the launcher only; workers never import it).
_TFDS = ['tensorflow-datasets==4.9.10', 'tensorflow-metadata==1.21.0']
EXTRAS_REQUIRE = {
    'train': _TRAIN,
    'serve': _SERVE,
    # Renders the demo data. tinysoundfont itself must be installed with
    # `pip install --no-deps tinysoundfont` (its pyaudio dependency is for
    # live playback and needs portaudio headers); the Makefile does that.
    'demo': _DEMO,
    'tfds': _TFDS,
    'all': sorted(set(_TRAIN + _SERVE + _DEMO + _TFDS)),
    # librosa is the independent reference the feature tests compare against;
    # the GCS emulator serves gs:// on 127.0.0.1 to the cloud-path tests;
    # pytest-timeout turns a hung test into its threads' stacks.
    'test': ['pytest>=8,<10', 'pytest-xdist>=3.5,<4', 'pytest-timeout>=2.3,<3',
             'librosa==0.10.2.post1',
             'ruff==0.17.5', 'scikit-learn>=1.3,<2',
             'gcp-storage-emulator==2026.7.19'] + _TFDS,
    'bench': ['librosa==0.10.2.post1'],
}

setuptools.setup(
    name='nsynth-instrument',
    version=VERSION,
    description=__doc__.splitlines()[0],
    python_requires='>=3.10,<3.12',
    packages=setuptools.find_packages(
        include=['nsynth_common', 'nsynth_contracts', 'beam_pipelines',
                 'trainer', 'serving', 'demo_data']),
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={
        'console_scripts': [
            'nsynth-render-demo=demo_data.render:main',
            'nsynth-tfrecords=beam_pipelines.nsynth_tfrecords:main',
            'nsynth-train=trainer.task:main',
            'nsynth-evaluate=trainer.evaluate:main',
            'nsynth-export=serving.export:main',
            'nsynth-predict=serving.predict:main',
            'nsynth-client=serving.client:main',
        ],
    },
)
