"""torch's CPU SIMD path as a library knob (`cpu_capability`, ATEN_CPU_CAPABILITY): set in
the run's own process before torch loads, read back and recorded as the run's library
state (not its environment's), replayed as recorded, refused where the CPU lacks it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import grid_runs, run_snakemake, tiny_config
from reprogrid import config as cfg
from reprogrid.record.envvars import supported_capabilities
from reprogrid.steps import preflight

REPROGRID = Path(sys.executable).with_name("reprogrid")
AVX2_CPU = "processor\t: 0\nflags\t\t: fpu sse sse2 avx fma avx2\n"
AVX512_CPU = "flags : fpu avx2 fma avx512f avx512dq avx512bw avx512vl avx512cd\n"


def test_what_a_cpu_can_run_is_read_from_its_flags():
    assert supported_capabilities(AVX2_CPU) == ["default", "avx2"]
    assert supported_capabilities(AVX512_CPU) == ["default", "avx2", "avx512"]
    assert supported_capabilities("") == ["default"]  # unknown: only the portable path


def test_a_capability_the_cpu_lacks_is_refused_naming_the_key(monkeypatch):
    import reprogrid.record.envvars

    monkeypatch.setattr(reprogrid.record.envvars, "supported_capabilities", lambda: ["default", "avx2"])
    config = tiny_config(library_configs={"wide": {"cpu_capability": "avx512"}})
    with pytest.raises(cfg.ConfigError, match=r"library_configs.wide.cpu_capability: .*'avx512' needs "
                                              r"instructions this CPU does not have \(it can run: default, avx2\)"):
        preflight.check_inputs(config)


@pytest.mark.workflow
def test_each_run_records_the_path_its_kernels_took_and_replays_on_it(tmp_path):
    best = supported_capabilities()[-1]
    config = tiny_config(seed_settings={"all_fixed": {}}, replicates=1,
                         library_configs={"native": {"threads": 1}, "portable": {"cpu_capability": "default"},
                                          "best": {"cpu_capability": best}})
    done = run_snakemake(tmp_path, "--cores", "2", config=config)
    assert done.returncode == 0, done.stderr[-3000:]
    records = {lc: json.loads((tmp_path / "results" / "runs" / "all_fixed" / lc / "r1" / "train.json").read_text())
               for lc in ("native", "portable", "best")}
    effective = {lc: r["library_effective"]["cpu_capability"] for lc, r in records.items()}
    # a library configuration without the knob takes what the environment says (CI also runs with
    # ATEN_CPU_CAPABILITY=default, as a CPU without AVX2 would), else the CPU's best
    native = os.environ.get("ATEN_CPU_CAPABILITY") or best
    assert effective == {"native": native, "portable": "default", "best": best}
    assert records["portable"]["library_effective"]["env_vars"]["ATEN_CPU_CAPABILITY"] == "default"
    # the machine is one: the environment hash is the same whatever path the kernels took
    assert len({r["hashes"]["env"] for r in records.values()}) == 1
    assert records["portable"]["hashes"]["library"] != records["best"]["hashes"]["library"]

    portable = next(r for r in grid_runs(tmp_path) if r.data.tags["reprogrid.libconf"] == "portable")
    replay = subprocess.run([str(REPROGRID), "replay", portable.info.run_id], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300)
    assert replay.returncode == 0 and "verdict: bitwise" in replay.stdout, replay.stdout + replay.stderr


@pytest.mark.workflow
@pytest.mark.parametrize("missing", sorted({"avx2", "avx512"} - set(supported_capabilities())) or ["none"])
def test_the_workflow_refuses_a_capability_this_cpu_lacks_before_any_work(tmp_path, missing):
    if missing == "none":
        pytest.skip("this CPU runs every capability torch has on x86: nothing to refuse (the unit test above "
                    "refuses one on a CPU it is told lacks it)")
    done = run_snakemake(tmp_path, "--cores", "2",
                         config=tiny_config(library_configs={"wide": {"cpu_capability": missing}}))
    assert done.returncode != 0
    assert f"config key library_configs.wide.cpu_capability: cpu_capability '{missing}' needs" in done.stderr
    assert not (tmp_path / "results").exists()


def test_replay_says_when_the_kernels_took_another_path():
    from reprogrid.investigate.replay import capability_notes

    recorded = {"library_effective": {"cpu_capability": "avx512"}, "env": {}}
    assert capability_notes(recorded, {"library_effective": {"cpu_capability": "avx512"}, "env": {}}) == []
    note = capability_notes(recorded, {"library_effective": {"cpu_capability": "avx2"}, "env": {}})
    assert note and note[0].startswith("torch's CPU kernels ran the avx2 path here and the avx512 path in the run")
    older = {"library_effective": {}, "env": {"cpu_capability": "AVX512"}}  # recorded before the knob existed
    assert capability_notes(older, {"library_effective": {"cpu_capability": "avx2"}, "env": {}})
