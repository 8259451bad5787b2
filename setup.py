"""NSynth instrument-family classifier: Beam features, Keras trainer, TF Serving export.

Beam workers (Dataflow, Flink, Spark) install the project from this file:
pass --setup_file=./setup.py to the Beam job.
"""

import re

import setuptools

with open('nsynth_contracts/__init__.py', encoding='utf-8') as f:
  VERSION = re.search(r"__version__ = '([^']+)'", f.read()).group(1)

# One pinned, mutually compatible stack (see BUILD_NOTES.md, "Stack"):
# tensorflow-io 0.37.1 is the last release and its kernels load only with
# TensorFlow <= 2.17; tensorflow-serving-api must match TensorFlow's minor.
INSTALL_REQUIRES = [
    'tensorflow==2.17.1',
    'tensorflow-io==0.37.1',
    'tensorflow-serving-api==2.17.1',
    'apache-beam==2.77.0',
    'absl-py>=2.1,<3',
    'numpy>=1.26,<2',
    'google-crc32c>=1.5,<2',   # C crc32c for TFRecord framing.
    'isal>=1.6,<2',            # ISA-L GZIP: 6x zlib's speed, same format.
    'matplotlib>=3.8,<4',
    'tqdm>=4.66,<5',
]

EXTRAS_REQUIRE = {
    # Renders the demo data. tinysoundfont itself must be installed with
    # `pip install --no-deps tinysoundfont` (its pyaudio dependency is for
    # live playback and needs portaudio headers); the Makefile does that.
    'demo': ['pretty_midi>=0.2.10,<0.3'],
    # librosa is the independent reference the feature tests compare against.
    'test': ['pytest>=8,<10', 'pytest-xdist>=3.5,<4', 'librosa==0.10.2.post1',
             'pretty_midi>=0.2.10,<0.3'],
    'bench': ['librosa==0.10.2.post1'],
}

setuptools.setup(
    name='nsynth-instrument',
    version=VERSION,
    description=__doc__.splitlines()[0],
    python_requires='>=3.10,<3.12',
    packages=setuptools.find_packages(
        include=['nsynth_contracts', 'beam_pipelines', 'trainer', 'serving',
                 'demo_data']),
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={
        'console_scripts': [
            'nsynth-tfrecords=beam_pipelines.nsynth_tfrecords:main',
            'nsynth-render-demo=demo_data.render:run',
        ],
    },
)
