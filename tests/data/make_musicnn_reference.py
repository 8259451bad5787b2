"""musicnn's own outputs on a few clips: the reference tests/test_musicnn_network.py
compares our Keras port (nsynth_contracts.musicnn_network) against.

It runs the original package, its TF1 graph and its librosa input, through
its public `musicnn.extractor.extractor`. That graph needs tf-keras with
TF_USE_LEGACY_KERAS=1, which would break the project's Keras 3, so run it in
a throwaway virtualenv, from the repository root:

    python3.11 -m venv /tmp/musicnn-ref-venv
    /tmp/musicnn-ref-venv/bin/pip install tensorflow==2.17.1 \
        'tf-keras==2.17.*' librosa==0.10.2.post1 'numpy<2' soundfile
    /tmp/musicnn-ref-venv/bin/pip install --no-deps musicnn==0.1.0
    /tmp/musicnn-ref-venv/bin/python tests/data/make_musicnn_reference.py

Inputs: the rendered demo notes in tests/data/musicnn/ (TimGM6mb and Merlin,
four families), a 440 Hz sine it writes there, and 4 s of silence. Output:
tests/data/musicnn_reference.npz, keyed '<model>/<clip>/<what>':
  <layer>_mean, <layer>_max  the frame layers pooled over the clip
                             ('midend' is the extractor's mean_pool/max_pool)
  penultimate, taggram       the clip layers
  <layer>_frames             the frame layers at FRAMES (the edges, where
                             padding matters, and the middle)
"""

import glob
import os
import sys
import tempfile

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

import numpy as np  # noqa: E402
import soundfile  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CLIP_DIR = os.path.join(HERE, 'musicnn')
OUTPUT = os.path.join(HERE, 'musicnn_reference.npz')
MODELS = ('MTT_musicnn', 'MSD_musicnn')
FRAME_LAYERS = ('timbral', 'temporal', 'cnn1', 'cnn2', 'cnn3')
FRAMES = (0, 1, 2, 125, 248, 249, 250)
SAMPLE_RATE = 16000
CLIP_SAMPLES = 64000
# The extractor cuts patches of time_to_frames(input_length) + 1 frames;
# 4.02 s gives 251, every frame of a 4 s clip (4.0 s would give 250).
INPUT_LENGTH_SECONDS = 4.02
SILENCE = 'silence'


def write_sine(path: str) -> None:
  t = np.arange(CLIP_SAMPLES) / SAMPLE_RATE
  soundfile.write(path, 0.5 * np.sin(2 * np.pi * 440.0 * t), SAMPLE_RATE,
                  subtype='PCM_16')


def reference(extractor, path: str, model: str) -> dict[str, np.ndarray]:
  taggram, _, layers = extractor.extractor(
      path, model=model, input_length=INPUT_LENGTH_SECONDS,
      extract_features=True)
  out = {'taggram': taggram[0], 'penultimate': layers['penultimate'][0],
         'midend_mean': layers['mean_pool'][0],
         'midend_max': layers['max_pool'][0]}
  for layer in FRAME_LAYERS:
    frames = layers[layer]                              # [251, width]
    if frames.shape[0] != 251:
      sys.exit(f'{path}: {frames.shape[0]} frames, not 251')
    out[f'{layer}_mean'] = frames.mean(axis=0)
    out[f'{layer}_max'] = frames.max(axis=0)
    out[f'{layer}_frames'] = frames[list(FRAMES)]
  return {k: np.asarray(v, np.float32) for k, v in out.items()}


def main() -> None:
  from musicnn import extractor
  sine = os.path.join(CLIP_DIR, 'sine_440hz.wav')
  if not os.path.exists(sine):
    write_sine(sine)
  clips = {os.path.basename(p)[:-4]: p
           for p in sorted(glob.glob(os.path.join(CLIP_DIR, '*.wav')))}
  arrays = {'frames': np.asarray(FRAMES)}
  with tempfile.TemporaryDirectory() as tmp:
    clips[SILENCE] = os.path.join(tmp, 'silence.wav')
    soundfile.write(clips[SILENCE], np.zeros(CLIP_SAMPLES), SAMPLE_RATE,
                    subtype='PCM_16')
    for model in MODELS:
      for name, path in clips.items():
        for what, value in reference(extractor, path, model).items():
          arrays[f'{model}/{name}/{what}'] = value
  np.savez_compressed(OUTPUT, **arrays)
  print(f'wrote {OUTPUT}: {len(arrays)} arrays, '
        f'{os.path.getsize(OUTPUT):,} bytes')


if __name__ == '__main__':
  main()
