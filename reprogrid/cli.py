"""The `reprogrid` command: audit a grid and replay runs, from the MLflow store alone.

    reprogrid audit [--experiment NAME] [--tracking-uri URI] [--json PATH]
    reprogrid replay RUN_ID [--tracking-uri URI]
    reprogrid diverge RUN_A RUN_B [--json PATH] [--streams DIR] [--tracking-uri URI]
    reprogrid resume-check RESUMED REFERENCE [--json PATH] [--tracking-uri URI]
    reprogrid init [DIR] [--data PKG.MOD:FN] [--model PKG.MOD:FN] [--fit PKG.MOD:FN] [--force]
    reprogrid --version

Exit status: 0 when the audit finds nothing wrong / the replay is bitwise / the two
runs do not diverge / the resumed run ends as the uninterrupted one; 1 when it finds
violations / the replay differs / the divergence is localised / the resume differs; 2
when it could not be done (unknown run or experiment, unreachable store), with a
one-line reason.
"""

from __future__ import annotations

import argparse
import os
import sys

from reprogrid.config.tracking_uri import DEFAULT_TRACKING_URI, credential_free


def default_tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def parse(argv: list[str]) -> argparse.Namespace:
    from reprogrid import __version__

    parser = argparse.ArgumentParser(prog="reprogrid", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"reprogrid {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    audit = commands.add_parser("audit", help="check an experiment's runs against the grid and each other")
    audit.add_argument("--experiment", help="MLflow experiment (default: the only one holding a reprogrid grid)")
    audit.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    replay = commands.add_parser("replay", help="re-execute one run and compare every hash")
    replay.add_argument("run_id")
    replay.add_argument("--workdir", metavar="DIR",
                        help="where the run's own code and data files are (default: the working directory "
                             "recorded with the run, else the current one)")
    diverge = commands.add_parser("diverge", help="localise where two runs part: epoch, step, operation, cause")
    diverge.add_argument("run_a")
    diverge.add_argument("run_b")
    diverge.add_argument("--json", metavar="PATH", help="also write the finding as JSON")
    diverge.add_argument("--streams", metavar="DIR",
                         help="where the op streams of the re-executions go (default: diverge/A-B)")
    resume = commands.add_parser("resume-check", help="name the state a resumed run did not restore, against "
                                                      "the same seeds uninterrupted")
    resume.add_argument("resumed", help="run key (setting/libconf/rN, under ./results/runs) or MLflow run id")
    resume.add_argument("reference", help="the same seeds, uninterrupted: run key or MLflow run id")
    resume.add_argument("--json", metavar="PATH", help="also write the finding as JSON")
    init = commands.add_parser("init", help="set a project up to run reprogrid's workflow: a Snakefile using "
                                            "it as a Snakemake module, and config/config.yaml to edit")
    init.add_argument("directory", nargs="?", default=".", help="the project (default: the current directory)")
    init.add_argument("--data", metavar="PKG.MOD:FN", help="your data factory instead of scikit-learn's digits")
    init.add_argument("--model", metavar="PKG.MOD:FN", help="your model factory instead of the built-in MLP")
    init.add_argument("--fit", metavar="PKG.MOD:FN", help="your training loop, fit(run, **kwargs)")
    init.add_argument("--force", action="store_true", help="overwrite the files if they exist")
    for command in (audit, replay, diverge, resume):
        command.add_argument("--tracking-uri", default=default_tracking_uri(), type=credential_free,
                             help=f"MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else {DEFAULT_TRACKING_URI}); "
                                  "credentials in it are passed to MLflow through the environment")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.command == "init":
        return init(args)
    from reprogrid.config import ConfigError
    from reprogrid.investigate.diverge import DivergeError
    from reprogrid.investigate.replay import ReplayError
    from reprogrid.investigate.resumecheck import ResumeCheckError
    from reprogrid.record.mlflow_store import StoreError, check_server, check_sqlite_store

    try:
        check_sqlite_store(args.tracking_uri)
        check_server(args.tracking_uri)  # a down server: one line now, not minutes of MLflow's retries
        if args.command == "audit":
            return audit(args)
        if args.command == "diverge":
            return diverge(args)
        if args.command == "resume-check":
            return resume_check(args)
        return replay(args)
    except (StoreError, ReplayError, DivergeError, ResumeCheckError) as error:
        print(f"reprogrid {args.command}: {error}", file=sys.stderr)
        return 2
    except ConfigError as error:  # the run's own factories or data cannot be found here
        print(f"reprogrid {args.command}: {error} (give the directory that holds them with --workdir)",
              file=sys.stderr)
        return 2


def init(args) -> int:
    from pathlib import Path

    from reprogrid.workflow.reprogrid_init import InitError
    from reprogrid.workflow.reprogrid_init import init as init_project

    try:
        written = init_project(Path(args.directory), force=args.force, data=args.data, model=args.model,
                               fit=args.fit)
    except InitError as error:
        print(f"reprogrid init: {error}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    print("next: snakemake --cores 2   (then: reprogrid audit)")
    return 0


def audit(args) -> int:
    from reprogrid.investigate.audit_view import render
    from reprogrid.steps.audit import run_audit

    report = run_audit(args.tracking_uri, args.experiment, args.json)
    print(render(report, args.tracking_uri))
    return 0 if report.ok else 1


def replay(args) -> int:
    from reprogrid.investigate import replay as replaying

    comparison, replay_run_id, key = replaying.replay(args.run_id, args.tracking_uri, workdir=args.workdir)
    print(replaying.render(comparison, args.run_id, key, replay_run_id))
    return 0 if comparison.verdict == "bitwise" else 1


def diverge(args) -> int:
    from reprogrid.investigate import diverge as diverging

    found = diverging.diverge(args.run_a, args.run_b, args.tracking_uri, args.streams)
    return _finding(diverging.render(found), found, args.json)


def resume_check(args) -> int:
    from reprogrid.investigate import resumecheck

    found = resumecheck.check(args.resumed, args.reference, args.tracking_uri)
    return _finding(resumecheck.render(found), found, args.json)


def _finding(text: str, found: dict, json_path: str | None) -> int:
    print(text)
    if json_path:
        from reprogrid.record.sealed import write_json

        write_json(json_path, found)
    return 1 if found["diverged"] else 0


if __name__ == "__main__":
    sys.exit(main())
