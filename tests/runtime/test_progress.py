import asyncio
import time

import pytest

from mcp_server.runtime.progress import ProgressCoalescer, ProgressMeter, describe, frames_to
from tests.support import yield_to_other_tasks

WAIT = 2.0


class Recorder:
    def __init__(self) -> None:
        self.sent: list[dict] = []
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()
        self.delivered = asyncio.Event()

    async def send(self, message: dict) -> None:
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        self.sent.append(message["params"])
        self.delivered.set()


def _coalescer(recorder: Recorder, rate: float = 10.0) -> ProgressCoalescer:
    return ProgressCoalescer(
        deliver=frames_to("tok", recorder.send), max_rate=rate, meter=ProgressMeter()
    )


async def test_first_and_final_updates_always_arrive_and_the_rest_is_coalesced() -> None:
    recorder = Recorder()
    coalescer = _coalescer(recorder, rate=10)
    started = time.monotonic()
    for done in range(1, 20_001):
        coalescer.report(done, 20_000, f"item {done}")
        if done % 1000 == 0:
            await yield_to_other_tasks()
    await coalescer.close()
    elapsed = time.monotonic() - started
    progress = [params["progress"] for params in recorder.sent]
    assert progress[0] == 1
    assert progress[-1] == 20_000
    assert all(b > a for a, b in zip(progress, progress[1:], strict=False))
    assert len(progress) <= 2 + 10 * elapsed + 1
    assert coalescer.reported == 20_000
    assert all(
        params["progressToken"] == "tok" and params["total"] == 20_000 for params in recorder.sent
    )


async def test_rate_is_bounded_over_time() -> None:
    recorder = Recorder()
    coalescer = _coalescer(recorder, rate=20)
    loop = asyncio.get_running_loop()
    started = loop.time()
    done = 0
    while loop.time() - started < 0.5:
        done += 1
        coalescer.report(done, None, None)
        await yield_to_other_tasks()
    await coalescer.close()
    assert recorder.sent[-1]["progress"] == done
    assert "total" not in recorder.sent[-1]
    # 0.5 s at 20/s: about 10, plus the first and the final one.
    assert 3 <= len(recorder.sent) <= 13


async def test_a_slow_client_never_blocks_the_tool_and_gets_the_newest() -> None:
    recorder = Recorder()
    recorder.gate = asyncio.Event()
    coalescer = _coalescer(recorder, rate=1000)
    coalescer.report(1, 100, None)
    await asyncio.wait_for(recorder.entered.wait(), WAIT)
    for done in range(2, 101):  # the first send is stuck; reports must not pile up
        coalescer.report(done, 100, None)
    recorder.gate.set()
    await asyncio.wait_for(coalescer.close(), WAIT)
    assert [params["progress"] for params in recorder.sent] == [1, 100]


async def test_non_increasing_reports_are_dropped() -> None:
    recorder = Recorder()
    coalescer = _coalescer(recorder)
    coalescer.report(5, 10, None)
    coalescer.report(5, 10, None)
    coalescer.report(3, 10, None)
    await coalescer.close()
    assert [params["progress"] for params in recorder.sent] == [5]
    assert coalescer.reported == 1


async def test_abort_sends_nothing_more_and_close_after_abort_is_silent() -> None:
    recorder = Recorder()
    coalescer = _coalescer(recorder, rate=1)
    coalescer.report(1, 10, None)
    await asyncio.wait_for(recorder.delivered.wait(), WAIT)
    coalescer.report(2, 10, None)
    coalescer.abort()
    coalescer.report(3, 10, None)
    await coalescer.close()
    assert [params["progress"] for params in recorder.sent] == [1]


def test_meter_rate_and_eta() -> None:
    meter = ProgressMeter()
    assert meter.rate() is None
    meter.sample(10.0, 0)
    meter.sample(12.0, 100)
    assert meter.rate() == pytest.approx(50)
    assert meter.eta(100, 1100) == pytest.approx(20)
    assert meter.eta(100, None) is None


@pytest.mark.parametrize(
    ("message", "rate", "eta", "text"),
    [
        ("batch 42", 350.4, 15.2, "batch 42 · 350 items/s · ETA 16 s"),
        (None, 2.25, 125, "2.2 items/s · ETA 2 min 05 s"),
        ("x", None, None, "x"),
        (None, 1000, 7300, "1,000 items/s · ETA 2 h 01 min"),
    ],
)
def test_describe(message, rate, eta, text) -> None:
    assert describe(message, rate, eta) == text
