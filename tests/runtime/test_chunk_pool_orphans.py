"""A fan-out pool whose process is killed with -9 leaves no pool process behind."""

import os
import signal
import subprocess
import sys

from tests.e2e.support import pid_alive, wait_until

# Starts a pool of two processes, prints their pids, then waits to be killed.
_POOL_OWNER = """
import asyncio, multiprocessing, sys
from mcp_server.runtime.chunk_pool import LocalChunks

async def main():
    pool = LocalChunks(processes=2, name="orphans")
    await pool.warm()
    print(" ".join(str(p.pid) for p in multiprocessing.active_children()), flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def test_pool_processes_end_when_their_parent_is_killed() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    owner = subprocess.Popen(
        [sys.executable, "-c", _POOL_OWNER], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert owner.stdout is not None
        pids = [int(pid) for pid in owner.stdout.readline().split()]
        assert len(pids) == 2 and all(pid_alive(pid) for pid in pids)
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        wait_until(lambda: not any(pid_alive(pid) for pid in pids), 30, "the pool processes to end")
    finally:
        owner.kill()
        owner.wait()
