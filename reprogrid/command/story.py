"""What a training.command run seeded and drew from, in one sentence read off its watch:
"classify.py seeds torch at classify.py:30 with the command's {seed} (fixed) and draws from
torch's global generator, but draws from NumPy's global generator in classify.py:20 and
never seeds it (numpy: plain, a new seed every run)". Paths are relative to the script's
folder."""

from __future__ import annotations

import os

from reprogrid.command.governing import governing
from reprogrid.inputs.rngtrace import NAMES

MODE_WORDS = {"fixed": "fixed", "vary": "varied per replicate", "plain": "plain, a new seed every run",
              "unseeded": "unseeded, a new seed every run"}


def _place(where: str, root: str | None) -> str:
    path, _, line = where.rpartition(":")
    if root and path.startswith(root + os.sep):
        path = os.path.relpath(path, root)
    return f"{path}:{line}"


def _sites(train: dict, generator: str, root: str | None) -> str:
    """Where the main process drew from `generator`: NumPy's and Python's first draw after
    the last seeding; each line of the user's code that drew from torch's (and how)."""
    if generator == "torch":
        sites = dict.fromkeys(f"{_place(s['where'], root)} ({s['call']})" for s in train.get("draw_sites", [])
                              if s["main"] and s["where"] != "?")
        return f" at {', '.join(sites)}" if sites else ""
    draws = [d for d in train["first_draws"] if d["main"] and d["generator"] == generator]
    return f" in {_place(draws[-1]['where'], root)}" if draws else ""


def seeding_story(train: dict) -> str:
    """One sentence: per generator the run drew from, who seeded it (the script, where, with
    what) and where it was first drawn from after that; '' for a run that drew from none."""
    script = train.get("script")
    root = os.path.dirname(script) if script else None
    seeds, modes = train["seeds"], train["seed_modes"]
    events = train["seeding"]
    seeded, unseeded = [], []
    for generator in train["drawn"]:
        source, call = governing(generator, events, seeds["script"])
        drawn = f"draws from {NAMES[generator]}" + _sites(train, generator, root)
        if source == "script":
            seeded.append(f"seeds {generator} at {_place(call['where'], root)} with the command's {{seed}} "
                          f"({MODE_WORDS[modes['script']]}) and {drawn}")
        elif source == "constant":
            seeded.append(f"seeds {generator} at {_place(call['where'], root)} with the constant {call['value']} "
                          f"and {drawn}")
        elif modes[generator] == "fixed":
            unseeded.append(f"{drawn} and never seeds it, which reprogrid fixed before the script's first line "
                            f"({generator}: fixed)")
        else:
            unseeded.append(f"{drawn} and never seeds it ({generator}: {MODE_WORDS[modes[generator]]})")
    if not seeded + unseeded:
        return ""
    name = os.path.basename(script) if script else "the command"
    return f"{name} " + ", but ".join(part for part in ("; ".join(seeded), "; ".join(unseeded)) if part)
