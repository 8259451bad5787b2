"""A small NSynth-layout dataset rendered from a General MIDI SoundFont."""
