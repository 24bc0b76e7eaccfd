"""The history writer process's entry point: `python -m mcp_server.runtime.history_child
READ_FD WRITE_FD`, started by `HistoryProcess` (mcp_server/runtime/history_process.py).

It takes its database and history caps from the first message on the pipe, sets Django up
with them, then writes the batches it receives until the pipe closes. Nothing of Django is
imported before that: the models need the settings first.
"""

import contextlib
import os
import pickle
import signal
import sys
from multiprocessing.connection import Connection


def parse_cpus(text: str) -> set[int]:
    """CPUs named like taskset's list ("1", "0,2", "2-3"); ValueError for anything else."""
    cpus: set[int] = set()
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return cpus


def main(argv: list[str]) -> int:
    """The writer process: read batches from the pipe, write them, confirm them."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the server's SIGTERM: drain on EOF instead
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    incoming = Connection(int(argv[1]), writable=False)
    outgoing = Connection(int(argv[2]), readable=False)
    try:
        hello = pickle.loads(incoming.recv_bytes())
    except EOFError:
        return 0
    if hello["cpus"]:
        os.sched_setaffinity(0, parse_cpus(hello["cpus"]))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.db import connections

    from mcp_server.runtime.history_serve import serve

    # The parent's database (already complete with Django's defaults), in place of the one
    # the environment names; a connection object made from the latter is forgotten.
    connections.settings["default"] = hello["settings"]["DATABASES"]["default"]
    with contextlib.suppress(AttributeError):
        del connections["default"]
    for name, value in hello["settings"]["limits"].items():
        setattr(settings, name, value)
    try:
        serve(incoming, outgoing, hello)
    finally:
        connections.close_all()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
