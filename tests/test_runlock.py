"""The per-run lock: held by a live process, released by the kernel when it dies."""

import os
import signal
import subprocess
import sys
import time

import pytest

from reprogrid.jobs import runlock

HOLD = "from reprogrid.jobs import runlock; import sys, time; runlock.acquire('s/l/r1'); print('held', flush=True); " \
       "time.sleep(60)"


def test_a_held_run_is_waited_for_then_refused_naming_its_holder(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", HOLD], cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        with pytest.raises(runlock.RunLocked, match=rf"run s/l/r1 is still being worked on by an earlier attempt "
                                                    rf"\(pid {holder.pid}\) after waiting 1 s"):
            runlock.acquire("s/l/r1", timeout=1)
        assert time.monotonic() - started >= 1
        assert f"waiting for an earlier attempt at run s/l/r1 (pid {holder.pid})" in capfd.readouterr().err
        os.kill(holder.pid, signal.SIGKILL)  # however it dies, the kernel releases its lock
        holder.wait()
        fd = runlock.acquire("s/l/r1", timeout=1)
        os.close(fd)
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
