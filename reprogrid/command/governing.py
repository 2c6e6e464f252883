"""The prediction for a training.command run, from what the watch saw inside it: every
global generator it drew from is governed by the last seeding before its draws, and the
run's replicates are bit-identical only if each of those is fixed.

Who governs a generator: the script's own last seeding call in its main process (a value
equal to `{seed}` follows the `script` source; any other value is a constant, fixed),
else reprogrid's seeding before line one (that generator's own source). Seeding in
DataLoader workers governs the workers' draws; torch derives the workers' seeds from its
global generator, so they follow torch's.
"""

from __future__ import annotations

GENERATOR_OF_CALL = {"torch": "torch", "cuda": "torch", "numpy": "numpy", "python": "python"}
FIXED = ("fixed",)


def drawn_generators(watch: dict, events: list[dict]) -> list[str]:
    """Global generators the run drew from: advanced between fingerprinted steps, or drawn
    from through NumPy's and Python's module functions or torch's drawing functions (before
    training too)."""
    drawn = {g for _, advanced in watch.get("rng_intervals", []) for g in advanced}
    drawn |= {e["generator"] for e in events if e["event"] in ("first_draw", "draw_site")}
    return sorted(GENERATOR_OF_CALL.get(g, g) for g in drawn if GENERATOR_OF_CALL.get(g, g) in ("torch", "numpy", "python"))


def governing(generator: str, events: list[dict], script_seed: int) -> tuple[str, dict | None]:
    """("script" | "constant" | generator, the seeding call or None): what last seeded
    `generator` in the main process."""
    calls = [e for e in events if e["event"] == "seed" and e["main"]
             and GENERATOR_OF_CALL.get(e["generator"]) == generator]
    if not calls:
        return generator, None
    last = calls[-1]
    return ("script" if last["value"] == script_seed else "constant"), last


def expect_command_bitwise(seed_modes: dict, seeds: dict, watch: dict, events: list[dict]) -> bool:
    for generator in drawn_generators(watch, events):
        source, _ = governing(generator, events, seeds["script"])
        if source != "constant" and seed_modes[source] not in FIXED:
            return False
    return True


def varied_command_sources(seed_modes: dict, seeds: dict, watch: dict, events: list[dict]) -> list[str]:
    """Sources that make the run's replicates differ: the governing source of a generator
    it drew from, where that source is not fixed."""
    varied = {source for generator in drawn_generators(watch, events)
              for source, _ in [governing(generator, events, seeds["script"])]
              if source != "constant" and seed_modes[source] not in FIXED}
    return sorted(varied)
