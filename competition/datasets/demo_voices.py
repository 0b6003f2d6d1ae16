"""The demo competition's vocabulary: each label and the General MIDI instruments that sound it.

Light on purpose (no synthesiser, no audio): the registry's demo entry takes its labels from here,
and only `demo_synth` renders clips with these voices.
"""

from __future__ import annotations

from dataclasses import dataclass

# Note-pattern families, by how an instrument is usually played.
SUSTAINED = ("single", "repeated", "melody")
KEYBOARD = ("single", "repeated", "melody", "chords", "arpeggio")
BELLS = ("single", "repeated", "melody", "cluster")
PERCUSSION = ("single", "repeated", "roll")


@dataclass(frozen=True)
class Voice:
    """One way to sound a label: a GM program over a key range, or percussion keys of a drum kit."""

    program: int | None  # 0-based GM program; None for the percussion channel
    keys: tuple[int, ...]  # playable MIDI keys (a pitch range, or GM percussion key numbers)
    patterns: tuple[str, ...]

    @property
    def is_drums(self) -> bool:
        return self.program is None


def _program(program: int, lowest_key: int, highest_key: int, patterns=SUSTAINED,
             silent_keys: tuple[int, ...] = ()) -> Voice:
    keys = tuple(key for key in range(lowest_key, highest_key + 1) if key not in silent_keys)
    return Voice(program, keys, patterns)


def _percussion(*keys: int) -> Voice:
    return Voice(None, keys, PERCUSSION)


# Key ranges follow each instrument's playable range and are all audible in TimGM6mb.
VOICES: dict[str, tuple[Voice, ...]] = {
    "Acoustic_guitar": (_program(24, 40, 84, KEYBOARD), _program(25, 40, 84, KEYBOARD)),  # nylon, steel
    "Applause": (_program(126, 48, 72, ("texture",)),),
    "Bass_drum": (_percussion(35, 36),),  # acoustic bass drum, bass drum 1
    "Cello": (_program(42, 36, 76),),
    "Chime": (_program(14, 55, 84, BELLS), Voice(None, (84,), ("single", "repeated"))),  # tubular bells, bell tree
    "Clarinet": (_program(71, 50, 91),),
    "Cowbell": (_percussion(56),),
    "Double_bass": (_program(43, 28, 55), _program(32, 28, 55)),  # bowed contrabass, plucked upright
    "Electric_piano": (_program(4, 36, 96, KEYBOARD), _program(5, 36, 96, KEYBOARD)),
    "Flute": (_program(73, 60, 96), _program(72, 74, 102)),  # flute, piccolo
    "Glockenspiel": (_program(9, 72, 105, BELLS),),
    "Gunshot_or_gunfire": (_program(127, 36, 72, ("shots",)),),
    "Harmonica": (_program(22, 60, 93),),
    "Hi-hat": (_percussion(42, 44, 46),),  # closed, pedal, open
    "Oboe": (_program(68, 58, 91), _program(69, 52, 81)),  # oboe, english horn
    "Saxophone": (_program(64, 56, 87), _program(65, 49, 81, silent_keys=(64,)),  # TimGM6mb's alto lacks E4
                  _program(66, 44, 76), _program(67, 36, 69)),
    "Snare_drum": (_percussion(38, 40),),  # acoustic, electric
    "Tambourine": (_percussion(54),),
    "Telephone": (_program(124, 36, 60, ("rings",)),),
    "Trumpet": (_program(56, 54, 84), _program(59, 54, 82)),  # open, muted
    "Violin_or_fiddle": (_program(40, 55, 100), _program(110, 55, 96)),  # violin, fiddle
}
# The demo's label vocabulary: every voiced label, sorted (FSDKaggle2018 labels, checked by the tests).
LABELS: tuple[str, ...] = tuple(sorted(VOICES))

# Stand-ins for the FSDKaggle2018 labels no General MIDI instrument sounds, used only by the
# full-size competition (`demo_synth.generate_full_size`): a sound effect, a percussion key or an
# instrument each label can be told apart by, not a likeness.
ONE_SHOT = ("single", "repeated")
STAND_IN_VOICES: dict[str, tuple[Voice, ...]] = {
    "Bark": (_program(118, 45, 65, ONE_SHOT),),  # synth drum
    "Burping_or_eructation": (_program(53, 36, 48, ("single",)),),  # voice oohs, low
    "Bus": (_program(125, 30, 50, ("single",)),),  # helicopter
    "Computer_keyboard": (_percussion(37, 75),),  # side stick, claves
    "Cough": (_program(121, 48, 72, ONE_SHOT),),  # breath noise
    "Drawer_open_or_close": (_percussion(73, 74),),  # short and long guiro
    "Fart": (_program(70, 34, 50, ONE_SHOT),),  # bassoon, low
    "Finger_snapping": (_percussion(39),),  # hand clap
    "Fireworks": (_percussion(49, 57),),  # crash cymbals
    "Gong": (_percussion(52), _program(47, 36, 55, ("single",))),  # Chinese cymbal, timpani
    "Keys_jangling": (_percussion(58, 69),),  # vibraslap, cabasa
    "Knock": (_percussion(76, 77),),  # wood blocks
    "Laughter": (_program(52, 55, 79, ("repeated", "melody")),),  # choir aahs
    "Meow": (_percussion(78, 79),),  # cuica
    "Microwave_oven": (_program(16, 36, 48, ("single",)),),  # drawbar organ hum
    "Scissors": (_percussion(70),),  # maracas
    "Shatter": (_percussion(55), _program(98, 72, 96, ("cluster",))),  # splash cymbal, FX crystal
    "Squeak": (_percussion(71, 72),),  # whistles
    "Tearing": (_program(122, 48, 72, ("single",)),),  # seashore
    "Writing": (_program(120, 40, 70, ("repeated",)),),  # guitar fret noise
}
assert not VOICES.keys() & STAND_IN_VOICES.keys()
