"""What the active mode can ask, in what words, and how a session's sequence is drawn."""

from __future__ import annotations

import random

INSTRUCTIONS = {
    "turn_left": "turn your head to the left",
    "turn_right": "turn your head to the right",
    "look_up": "look up",
    "look_down": "look down",
    "blink": "blink your eyes",
}
CHALLENGE_CODES = tuple(INSTRUCTIONS)
CHALLENGE_CODES = tuple(INSTRUCTIONS)


def draw_challenges(rng: random.Random, *, count: int | None = None) -> list[str]:
    """A random sequence of 2 or 3 challenge codes (``count`` fixes the length).

    No challenge follows itself, and there is at most one blink: blinks come by themselves
    every few seconds, so a recording "answers" a blink prompt far more often than a turn.
    Pass ``secrets.SystemRandom()`` in a service; a seeded ``random.Random`` reproduces a run."""
    length = count if count is not None else rng.choice((2, 3))
    if not 1 <= length <= len(CHALLENGE_CODES):
        raise ValueError(f"count must be from 1 to {len(CHALLENGE_CODES)}")
    sequence: list[str] = []
    while len(sequence) < length:
        options = [
            code
            for code in CHALLENGE_CODES
            if (not sequence or code != sequence[-1]) and not (code == "blink" and "blink" in sequence)
        ]
        sequence.append(rng.choice(options))
    return sequence
