"""Faust programs of the `faust` family's models (demo_data.faust_models).

Each is the body of a Faust program that sees `freq` (Hz), `gain` (0-1, from
the velocity), `gate` (1 for the 3 s the note is held, then 0), `t` (seconds
since the note began) and one slider per drawn control, named as in the
model's ranges. Waveguides come from Faust's physmodels.lib (`pm.`); the
additive and FM models are written here. No slider is smoothed: every note
starts from a cleared state, and a smoothed frequency would glide up from 0.
"""

PRELUDE = '''
import("stdfaust.lib");
freq = hslider("freq", 440, 20, 5000, 0.001);
gain = hslider("gain", 0.5, 0, 1, 0.001);
gate = ba.time < {hold_seconds} * ma.SR;
t = ba.time / ma.SR;
'''

# Bowed string: physmodels' violin, bowed with the envelope as bow speed.
VIOLIN = '''
env = gate * gain : si.smooth(ba.tau2pole(attack_s));
vib = 1 + os.osc(vibrato_hz) * vibrato_depth * env;
process = pm.violinModel(pm.f2l(freq * vib), bow_pressure, env, bow_position)
  : fi.dcblocker;
'''

CLARINET = '''
env = gate * gain : si.smooth(ba.tau2pole(attack_s));
blow = pm.blower(env, breath_noise, 2000, vibrato_hz, vibrato_depth);
process = pm.clarinetModel(pm.f2l(freq), blow, reed_stiffness, bell_opening)
  : fi.dcblocker;
'''

# physmodels' flute, given a tube of L m, plays at 504.6 / (L + 0.349) Hz at
# 48 kHz (fitted to YIN over MIDI 60-90: pm.f2l's length plays 275 cents
# sharp at MIDI 60 and 917 flat at 90), so the tube is cut for the note.
FLUTE = '''
env = gate * gain : si.smooth(ba.tau2pole(attack_s));
blow = pm.blower(env, breath_noise, 2000, vibrato_hz, vibrato_depth);
process = pm.fluteModel(504.6 / freq - 0.349, mouth_position, blow);
'''

GUITAR = '''
process = pm.guitar(pm.f2l(freq), pluck_position, gain, gate > 0)
  * select2(gate, release_gain, 1) : fi.lowpass(2, tone_hz);
'''

NYLON_GUITAR = '''
process = pm.nylonGuitar(pm.f2l(freq), pluck_position, gain, gate > 0)
  * select2(gate, release_gain, 1) : fi.lowpass(2, tone_hz);
'''

# A struck bar, modal: three modes at ratios between a glockenspiel's
# (1, 2.71, 5.15) and a marimba's (1, 3.99, 10.65), higher modes dying
# sooner, a vibraphone's motor tremolo, the mallet's click. (physmodels'
# marimba plays its lowest modes several semitones off the note.)
MODAL_BAR = '''
mode(r, level) = level * os.osc(freq * r)
  * exp(0 - t * pow(r, decay_slope) / decay_s);
bar = mode(1, 1) + mode(ratio2, gain2) + mode(ratio3, gain3);
click = no.noise * exp(0 - t / 0.0015) * click_level
  : fi.lowpass(2, hardness_hz);
trem = 1 - tremolo_depth * (0.5 + 0.5 * os.osc(tremolo_hz));
damper = select2(gate, exp(0 - (t - 3) / 0.3), 1);
process = (bar * trem + click) * damper * gain * 0.4;
'''

# A plucked string of our own (Karplus-Strong with a fractional delay), for
# notes below physmodels' 3 m string: an impulse through the finger's
# low-pass, set in harmonics (`pluck_bright`) so that harmonic k falls as
# 1/k^2 above it as a plucked string's triangle does (a noise burst's random
# harmonics leave some notes without a fundamental), a comb at the pluck
# position, a loop whose gain
# sets the T60, and a comb at the pickup. After the note, the damped loop
# decays in release_t60_s.
PLUCKED_BASS = '''
period = ma.SR / freq;
burst = (ba.time == 0) * gain : fi.lowpass(2, min(7000, freq * pluck_bright));
plucked = burst <: _, de.fdelay(8192, period * pluck_position) : -;
t60 = select2(gate, release_t60_s, sustain_t60_s);
loop_gain = pow(0.001, 1 / (freq * t60));
smooth2 = _ <: _, _' :> * (0.5);
string = (+ : de.fdelay4(8192, period - 1.5)) ~ (smooth2 : * (loop_gain));
pickup = _ <: _, de.fdelay(8192, period * pickup_position) : -;
process = plucked : string : pickup : fi.lowpass(2, tone_hz) : fi.dcblocker;
'''

# Electric bass: the plucked string above, through the amplifier's bass
# boost (sampled electric basses keep a strong fundamental however the
# pickup combs the harmonics), or an upright's: its body's low resonance
# and a short, thumping decay.
ELECTRIC_BASS = PLUCKED_BASS.replace(
    'process = plucked : string : pickup : fi.lowpass(2, tone_hz) '
    ': fi.dcblocker;',
    'process = plucked : string : pickup : fi.lowpass(2, tone_hz) '
    ': (_ <: _, fi.lowpass(1, 200) * (pow(10, shelf_db / 20) - 1) :> _) '
    ': fi.dcblocker;')
UPRIGHT_BASS = PLUCKED_BASS.replace(
    'process = plucked : string : pickup : fi.lowpass(2, tone_hz) '
    ': fi.dcblocker;',
    'body = _ <: _, fi.resonbp(body_hz, body_q, body_level) :> _;\n'
    'process = plucked : string : pickup : body : fi.lowpass(2, tone_hz) '
    ': fi.dcblocker;')

# Brass, Chowning's FM: the index follows the envelope, so the tone brightens
# as it grows, which is what sets brass apart from reeds. A slight scoop up
# to pitch at the attack, vibrato that enters late; the bell radiates the
# low harmonics least (a first-order high-pass).
FM_BRASS = '''
env = en.adsr(attack_s, 0.15, sustain_level, 0.08, gate);
scoop = 1 - scoop_depth * exp(0 - t / 0.04);
vib = 1 + os.osc(vibrato_hz) * vibrato_depth * min(1, t / 0.6);
f = freq * scoop * vib;
process = env * gain * os.oscp(f, max_index * env * os.osc(f))
  : fi.highpass(1, bell_hz);
'''

# Brass, additive: harmonics shaped by the bell's formant (a trumpet's near
# 1 kHz, a trombone's or horn's lower, a mute's higher and narrower), so the
# fundamental is weak and the third to sixth harmonics lead, as in sampled
# brass; the formant rises with the level (louder is brighter) and enters
# with the attack. Up to three voices a few cents apart make a section.
ADDITIVE_BRASS = '''
env = en.adsr(attack_s, 0.2, sustain_level, 0.08, gate);
level = env * gain;
vib = 1 + os.osc(vibrato_hz) * vibrato_depth * min(1, t / 0.5);
centre = formant_hz * (0.45 + 0.55 * level);
shape(f) = 1 / (1 + pow(log(f / centre) / (log(2) * width_oct), 2));
partial(d, k) = shape(freq * (k + 1)) * os.osc(freq * vib * d * (k + 1));
voice(v) = sum(k, 16, partial(1 + (v - 1) * section_cents / 1731, k))
  * select2(v == 0, section_level, 1);
breath = no.noise * breath_noise * level * 0.05 : fi.resonbp(centre, 2, 1);
process = (sum(v, 3, voice(v)) * 0.2 + breath) * level;
'''

# Tonewheel organ: nine drawbars of sines (16' and 5 1/3' kept below the 8',
# or they would take the pitch down an octave), the percussion's decaying
# second or third harmonic, a key click, and the scanner's chorus.
DRAWBAR_ORGAN = '''
env = en.asr(0.004, 1, 0.02, gate);
bar(r, level) = level * os.osc(freq * r);
tone = bar(0.5, d16 * d8) + bar(1.5, d513 * d8) + bar(1, d8) + bar(2, d4)
  + bar(3, d223) + bar(4, d2) + bar(5, d135) + bar(6, d113) + bar(8, d1);
perc = perc_level * os.osc(freq * (2 + perc_third)) * exp(0 - t / perc_decay_s);
click = no.noise * click_level * exp(0 - t / 0.004) : fi.lowpass(2, 4000);
chorus = _ <: _, de.fdelay(1024, 48 * (1 + 0.5 * os.osc(6.9)) * chorus_depth)
  :> * (0.5);
process = (tone * env + perc * gate + click) * gain * 0.25 : chorus;
'''

# Pipe organ: ranks of flue pipes (a principal's harmonics falling with
# `tilt`, a stopped flute's odd ones), a chiff of breathy noise at the
# onset, slow speech, and each rank a little off the others.
PIPE_ORGAN = '''
env = en.asr(attack_s, 1, release_s, gate);
principal(f) = sum(k, 10, os.osc(f * (k + 1)) / pow(k + 1, tilt));
stopped(f) = sum(k, 4, os.osc(f * (2 * k + 1)) / pow(2 * k + 1, 2));
ranks = principal8 * principal(freq) + flute8 * stopped(freq * (1 + detune))
  + octave4 * principal(2 * freq * (1 - detune))
  + fifteenth2 * principal(4 * freq);
chiff = no.noise * chiff_level * exp(0 - t / 0.05) : fi.resonbp(freq * 3, 4, 1);
process = (ranks * env + chiff * gate) * gain * 0.2;
'''

# Reed organ (harmonium): a free reed's pulse, additive so that it stays
# band-limited, with the bellows' tremolo.
REED_ORGAN = '''
env = en.asr(attack_s, 1, 0.05, gate);
trem = 1 + tremolo_depth * os.osc(tremolo_hz);
partial(k) = sin(ma.PI * (k + 1) * duty) / (k + 1) * os.osc(freq * (k + 1));
process = sum(k, 16, partial(k)) * env * trem * gain * 0.4;
'''

# Electric piano, FM: a tone pair whose index decays, and a tine pair at a
# high ratio that only speaks at the attack.
FM_EPIANO = '''
decay = exp(0 - t / decay_s) * select2(gate, exp(0 - (t - 3) / 0.1), 1);
tone = os.oscp(freq, index * exp(0 - t / index_decay_s) * os.osc(freq));
tine = os.oscp(freq,
               tine_index * exp(0 - t / 0.03) * os.osc(freq * tine_ratio));
process = (tone + tine_level * tine) * decay * gain * 0.4;
'''

# Acoustic piano, additive: stretched partials (inharmonicity B), each a
# pair of unison strings a few cents apart, higher partials dying sooner,
# the hammer's position carving the spectrum; the damper ends the note.
ADDITIVE_PIANO = '''
damper = select2(gate, exp(0 - (t - 3) / 0.08), 1);
fk(k) = freq * (k + 1) * sqrt(1 + inharmonicity * (k + 1) * (k + 1));
ak(k) = abs(sin(ma.PI * (k + 1) * hammer_position)) / pow(k + 1, tilt)
  * exp(0 - t * (1 + decay_growth * k) / decay_s);
pair(k) = os.osc(fk(k)) + os.osc(fk(k) * (1 + unison_cents / 1731));
thump = no.noise * exp(0 - t / 0.01) * 0.3 : fi.lowpass(2, 600);
process = (sum(k, 16, ak(k) * pair(k)) * 0.2 + thump) * damper * gain;
'''

# A rotating speaker (Leslie), for the organs below: the treble horn and the
# bass drum each swing the level and, by the Doppler shift of a moving
# source, the delay; `leslie_hz` from chorale (under 1 Hz) to tremolo (7 Hz).
_ROTOR = '''
horn(x) = x : fi.highpass(2, 800)
  : de.fdelay(1024, 48 * (2 + leslie_depth * os.osc(leslie_hz)))
  : *(1 - 0.4 * leslie_depth * (0.5 + 0.5 * os.osc(leslie_hz)));
drum(x) = x : fi.lowpass(2, 800)
  : *(1 - 0.2 * leslie_depth * (0.5 + 0.5 * os.osc(leslie_hz * 0.85)));
rotor(x) = horn(x) + drum(x);
'''

# Tonewheel organ sounding from its 16' (the octave below the key), as
# General MIDI's drawbar and percussive organs are registered, or, with the
# 5 1/3' over the 8', as its rock organ is: the nine drawbars, the
# percussion's second or third harmonic, key click, overdrive and the
# rotating speaker.
TONEWHEEL_ORGAN_16 = _ROTOR + '''
env = en.asr(0.004, 1, 0.02, gate);
bar(r, level) = level * os.osc(freq * r);
tone = bar(0.5, d16) + bar(1.5, d513) + bar(1, d8) + bar(2, d4)
  + bar(3, d223) + bar(4, d2) + bar(5, d135) + bar(6, d113) + bar(8, d1);
perc = perc_level * os.osc(freq * (2 + perc_third)) * exp(0 - t / perc_decay_s);
click = no.noise * click_level * exp(0 - t / 0.004) : fi.lowpass(2, 4000);
dry = (tone * env + perc * gate + click) * 0.25;
driven = ma.tanh(dry * (1 + 6 * drive)) / (1 + 2 * drive);
process = rotor(driven) * gain;
'''

# Church organ: flue ranks dominated by the 4' octave, a 2' and a mixture
# (2 2/3', 1 3/5'), each rank a little off the others, slow speech with a
# chiff, as General MIDI's church organs are registered.
CHURCH_ORGAN = '''
env = en.asr(attack_s, 1, release_s, gate);
principal(f) = sum(k, 8, os.osc(f * (k + 1)) / pow(k + 1, tilt));
ranks = principal8 * principal(freq)
  + octave4 * principal(2 * freq * (1 + detune))
  + fifteenth2 * principal(4 * freq * (1 - detune))
  + mixture * (os.osc(3 * freq) + 0.7 * os.osc(5 * freq)
               + 0.5 * os.osc(6 * freq));
chiff = no.noise * chiff_level * exp(0 - t / 0.05) : fi.resonbp(freq * 4, 4, 1);
process = (ranks * env + chiff * gate) * gain * 0.12;
'''

# Plucked and struck keyboard strings (General MIDI's harpsichord and
# clavinet are keyboards, and were heard as guitars): the plucked string of
# PLUCKED_BASS, bright and plucked near its end, in a harpsichord's two
# choirs (8' and 4') over a soundboard, or a clavinet's string struck near
# its end, read by a magnetic pickup and damped as the key rises.
_KEYED_STRING = '''
smooth2 = _ <: _, _' :> * (0.5);
t60 = select2(gate, release_t60_s, sustain_t60_s);
string(f, level) = (ba.time == 0) * level
  : fi.lowpass(2, min(7000, f * pluck_bright))
  : (_ <: _, de.fdelay(8192, ma.SR / f * pluck_position) : -)
  : (+ : de.fdelay4(8192, ma.SR / f - 1.5))
    ~ (smooth2 : *(pow(0.001, 1 / (f * t60))));
'''
HARPSICHORD = _KEYED_STRING + '''
body = _ <: _, fi.resonbp(body_hz, 2, body_level) :> _;
process = (string(freq, 1) + string(2 * freq, four_foot)) : body
  : fi.dcblocker : *(gain);
'''
CLAVINET = _KEYED_STRING + '''
pickup = _ <: _, de.fdelay(8192, ma.SR / freq * pickup_position) : -;
process = string(freq, 1) : pickup : fi.lowpass(2, tone_hz) : fi.dcblocker
  : *(gain);
'''
