"""What a grid shows, in sentences a newcomer can read: each cell's verdict (prediction
against observation), what varied, what the runs drew from and never used, where pairs
of runs part. Sentences are `Markup`, built with `Markup.format`, which escapes every
value it is handed: a name from a config can never become markup."""

from __future__ import annotations

import numpy as np
import pandas as pd
from markupsafe import Markup

from reprogrid.inputs import rngtrace


def missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA


def verdict(row) -> tuple[str, str]:
    """(text, css class) of one cell's verdict, prediction against observation."""
    observed = row["bitwise_reproducible"]
    if missing(observed):
        return "one run: cannot tell", ""
    expected = bool(row["expect_bitwise"])
    bound = row.get("divergence_rate_upper95")
    streak = "" if missing(bound) else (f" ({row['runs']} of {row['runs']} identical: a further run could still "
                                        f"diverge up to {bound:.0%} of the time, 95% bound)")
    if observed and expected:
        return f"bitwise reproducible, as predicted{streak}", "yes"
    if not observed and not expected:  # the expected difference: nothing to flag
        return f"runs differ ({row['distinct_weights']} distinct weights), as predicted", ""
    if observed:
        return f"bitwise reproducible although a source varies (it does not reach the weights){streak}", "warn"
    return "NOT reproducible although predicted bitwise: a violated prediction", "violated"


def cell_name(row) -> Markup:
    if row.get("variant"):  # a grid with variants: each variant's cells are its own
        return Markup("<b>{} × {} × {}</b>").format(row["setting"], row["libconf"], row["variant"])
    return Markup("<b>{} × {}</b>").format(row["setting"], row["libconf"])


def _and(items: list) -> Markup:
    """'a', 'a and b', 'a, b and c', each item escaped unless it is Markup already."""
    items = [Markup.escape(item) for item in items]
    return items[0] if len(items) == 1 else Markup(", ").join(items[:-1]) + Markup(" and ") + items[-1]


def _names(generators: list[str]) -> Markup:
    return _and([rngtrace.NAMES[g] for g in generators])


def _listed(value) -> list[str]:
    return [item for item in str(value or "").split(",") if item]


def lessons(summary: pd.DataFrame, divergences: pd.DataFrame) -> list[Markup]:
    """What the grid shows, one sentence per kind of finding, each naming the cells it
    holds for: a newcomer reads the grid's few lessons first (cell_details has the rest)."""
    out = []
    reproducible = summary[summary["bitwise_reproducible"] == True]  # noqa: E712 (None-safe)
    if not reproducible.empty:
        names = Markup(", ").join(cell_name(row) for _, row in reproducible.iterrows())
        out.append(Markup("Bitwise reproducible: {}: every replicate ends with identical weights and predictions.")
                   .format(names))
    differing = summary[summary["bitwise_reproducible"] == False]  # noqa: E712
    for varied, rows in differing[differing["varied_sources"].astype(bool)].groupby("varied_sources", sort=False):
        spreads = {f"{row['distinct_weights']} distinct final weights in {row['runs']} runs" for _, row in rows.iterrows()}
        spread = spreads.pop() + (" each" if len(rows) > 1 else "") if len(spreads) == 1 else "distinct final weights"
        out.append(Markup("Varying {} makes runs differ: {} ({}).").format(
            _and(_listed(varied)), Markup(", ").join(cell_name(row) for _, row in rows.iterrows()), spread))
    for _, row in differing[~differing["varied_sources"].astype(bool)].iterrows():
        if not row["expect_bitwise"]:  # the cause is the condition of the prediction that failed
            spread = f"{row['distinct_weights']} distinct final weights in {row['runs']} runs"
            unseeded = _listed(row.get("rng_unseeded"))
            cause = (Markup("leaves {} unseeded, and the runs drew from it").format(_names(unseeded))
                     if unseeded else "does not make the kernels deterministic")
            out.append(Markup("{}: every source is fixed, but the library configuration {}: {}.")
                       .format(cell_name(row), cause, spread))
    by = ["variant", "setting"] if "variant" in reproducible else ["setting"]
    for group, rows in reproducible.groupby(by, sort=False):
        setting = " × ".join(reversed(group)) if isinstance(group, tuple) else group
        libconfs = list(rows["libconf"])
        for i, a in enumerate(libconfs):
            same = set(str(rows.iloc[i]["same_weights_as"]).split(";"))
            for b in libconfs[i + 1:]:
                if b not in same:
                    out.append(Markup("<b>{}</b>: {} and {} draw exactly the same seeds but end with different "
                                      "weights: the library configuration alone changes the bits.").format(setting, a, b))
    for _, row in summary.iterrows():
        text, css = verdict(row)
        if css in ("warn", "violated"):
            out.append(Markup("{}: {}.").format(cell_name(row), text))
    out += [sentence for _, row in summary.iterrows() if (sentence := unused_in_words(row))]
    out += [Markup("{}: {}.").format(cell_name(row), row["seeding"]) for _, row in summary.iterrows()
            if not missing(row.get("seeding")) and row.get("seeding")]
    return out + parting_by_cause(divergences)


def parting_by_cause(divergences: pd.DataFrame) -> list[Markup]:
    """Where replicates part, grouped by the cause `diverge` found: the cells of each."""
    parted = divergences[divergences["diverged"] == True] if not divergences.empty else divergences  # noqa: E712
    if parted.empty:
        return []
    causes = []
    for cause, rows in parted.groupby(parted["cause"].fillna("not localised"), sort=False):
        causes.append(Markup("<b>{}</b> in {}").format(cause, Markup(", ").join(
            dict.fromkeys(cell_name(row) for _, row in rows.iterrows()))))
    return [Markup("Where runs part, by cause: {} (each pair, cell by cell, below).").format(Markup("; ").join(causes))]


def cell_details(summary: pd.DataFrame, divergences: pd.DataFrame) -> list[Markup]:
    """Cell by cell: what its training drew from and where its localised pairs part."""
    out = []
    for _, row in summary.iterrows():
        if sentence := drawn_in_words(row):
            out.append(sentence)
        if not divergences.empty:
            pairs = divergences[(divergences["setting"] == row["setting"]) & (divergences["libconf"] == row["libconf"])]
            if row.get("variant"):  # its run keys name it: setting/libconf/variant/rN
                pairs = pairs[pairs["run_a"].str.split("/").str[2] == row["variant"]]
            out += where_they_part(pairs)
    return out


def unused_in_words(row) -> Markup | None:
    """What the cell's setting or library configuration asks for that never reached its runs."""
    parts = []
    unused = _listed(row.get("unused_sources"))
    if unused:
        one = len(unused) == 1
        parts.append(Markup("{} {} from run to run, but the runs never drew from {}: {} cannot make them differ")
                     .format(_and([f"`{s}`" for s in unused]), "changes" if one else "change",
                             "its stream" if one else "their streams", "it" if one else "they"))
    if "num_workers" in _listed(row.get("library_unreached")):
        parts.append(Markup("the num_workers of {} did not reach the runs: no run.loader worker started (the "
                            "training's loaders are its own), so its weights do not measure it").format(row["libconf"]))
    return Markup("{}: {}.").format(cell_name(row), Markup("; ").join(parts)) if parts else None


def drawn_in_words(row) -> Markup | None:
    """What the cell's training drew from, what its library configuration seeded, and
    what its loader workers duplicated, in a sentence (from the RNG trace)."""
    drawn = _listed(row.get("rng_train"))
    if not drawn:
        return None
    counts = dict(item.split(":") for item in _listed(row.get("rng_train_epochs")) if ":" in item)
    coverage = {g: counts.get(g, "?/?").split("/") for g in drawn}
    if not counts:  # a training.command run's trace is by optimizer step, not epoch
        what = _names(drawn)
    elif all(k == n for k, n in coverage.values()):
        what = Markup("{}, in every epoch").format(_names(drawn))
    else:
        what = _and([f"{rngtrace.NAMES[g]} in {k} of {n} epochs" for g, (k, n) in coverage.items()])
    text = Markup("{}: training drew from {}").format(cell_name(row), what)
    unseeded = _listed(row.get("rng_unseeded"))
    entropy = [g for g in _listed(row.get("rng_os_entropy")) if g not in unseeded]
    differ = "so runs differ" if row["bitwise_reproducible"] is False else "so runs may differ"
    if unseeded:
        text += Markup("; {} leaves {} unseeded, {}").format(row["libconf"], _names(unseeded), differ)
    if entropy:  # seeded, but with a seed the setting draws from OS entropy
        text += Markup("; {} {} seeded with a seed drawn from OS entropy (its source is unseeded in {}), {}").format(
            _names(entropy), "is" if len(entropy) == 1 else "are", row["setting"], differ)
    if not unseeded and not entropy:
        text += Markup("; {} seeds {}").format(row["libconf"], "it" if len(drawn) == 1 else "them all")
    duplicated = _listed(row.get("worker_rng_duplicated"))
    if duplicated:
        text += Markup('. Its data-loader workers started {} in one same state: every worker draws the same '
                       '"random" numbers (pytorch#5059)').format(_names(duplicated))
    return text + Markup(".")


def part_at(row) -> str:
    """'epoch E[, step S, PHASE]'; a training.command run's steps are counted across the run: 'step S[, PHASE]'."""
    if missing(row["epoch"]):
        return "a point not localised" if missing(row["step"]) else ", ".join(
            [f"step {row['step']}"] + ([] if missing(row["phase"]) else [row["phase"]]))
    if row["epoch"] == 0 or missing(row["step"]):
        return f"epoch {row['epoch']}"
    return f"epoch {row['epoch']}, step {row['step']}, {row['phase']}"


def where_they_part(divergences: pd.DataFrame) -> list[Markup]:
    """One sentence per localised pair (divergence.csv): where the two runs part and why."""
    out = []
    for _, row in divergences.iterrows():
        if not row["diverged"]:
            continue
        where = part_at(row)
        op = Markup("")
        if not missing(row["op"]):
            op = Markup(" at <code>{}</code>").format(row["op"])
            if not missing(row["module"]):
                op += Markup(" in {}").format(row["module"])
        out.append(Markup("{}: {} and {} part at {}{}: <b>{}</b>. {}.").format(
            cell_name(row), row["run_a"], row["run_b"], where, op,
            "not localised" if missing(row["cause"]) else row["cause"], row["detail"]))
    return out
