"""The audit's report as a user reads it: every cell with its verdict, the violations and
notes, where the runs were recorded from (reprogrid.investigate.grid_audit makes it)."""

from __future__ import annotations

from reprogrid.investigate.run_record import Report


def render(report: Report, tracking_uri: str) -> str:
    """The report as a readable table."""
    lines = [f"reprogrid audit: experiment {report.experiment!r} at {tracking_uri}", ""]
    header = f"{'cell':<34} {'runs':>7} {'expect':>8} {'weights':>8} {'preds':>6}  verdict"
    lines += [header, "-" * len(header)]
    for cell in report.cells:
        runs = f"{cell['runs']}/{cell['expected']}" if cell["expected"] is not None else str(cell["runs"])
        lines.append(f"{' × '.join(cell[k] for k in ('setting', 'libconf', 'variant') if k in cell):<34} {runs:>7} "
                     f"{'bitwise' if cell['expect_bitwise'] else '-':>8} {cell['distinct_weights']:>8} "
                     f"{cell['distinct_predictions']:>6}  {cell['verdict']}")
        if cell.get("seeding"):  # a training.command run's: what it seeded and drew
            lines.append(f"    {cell['seeding']}")
    lines.append("")
    if len(report.origins) == 1:
        lines.append(f"recorded from: {next(iter(report.origins))}")
    for note in report.notes:
        lines.append(f"note: {note}")
    for violation in report.violations:
        lines.append(f"VIOLATION [{violation['check']}] {violation['message']}")
    counts = report.counts
    lines.append(f"{counts['current']} current runs of {counts['expected']} expected, {counts['replays']} replays, "
                 f"{counts['running']} running: " + ("OK" if report.ok else f"{len(report.violations)} violations"))
    return "\n".join(lines)
