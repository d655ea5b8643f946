"""Outage handling: health follows the dependencies, one warning per outage, and a bounded patience."""

import asyncio
import logging
import time

import pytest

from cancelguard.runtime import Dependencies, OutageTooLong, Shutdown, event_loop_name, run_on_loop


async def test_health_follows_the_dependencies_and_each_outage_is_said_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    health: list[bool] = []

    async def record(serving: bool) -> None:
        health.append(serving)

    deps = Dependencies({}, record, outage_limit_s=60)
    caplog.set_level(logging.WARNING, "cancelguard.runtime")
    await deps.up("Postgres")
    for _ in range(100):  # a hundred failed calls during one outage
        await deps.down("Postgres", ConnectionRefusedError("refused"))
    await deps.down("Kafka", TimeoutError())
    await deps.up("Postgres")
    assert health == [True, False]  # Kafka is still away
    await deps.up("Kafka")
    assert health == [True, False, True]
    lines = [r.getMessage() for r in caplog.records]
    assert sum("Postgres is unreachable" in line for line in lines) == 1
    assert sum("Postgres answers again" in line for line in lines) == 1
    assert len(lines) == 4  # Postgres down and back, Kafka down and back


async def test_an_outage_past_the_limit_stops_the_service_with_the_reason() -> None:
    async def ignore(serving: bool) -> None:
        pass

    deps = Dependencies({}, ignore, outage_limit_s=0.05)
    await deps.down("Postgres", OSError("gone"))
    deps.check_limit()  # within the limit: carry on
    await asyncio.sleep(0.06)
    with pytest.raises(OutageTooLong, match="Postgres has been unreachable"):
        deps.check_limit()


async def test_probes_turn_health_without_any_call() -> None:
    health: list[bool] = []
    up = {"Kafka": True}

    async def kafka() -> None:
        if not up["Kafka"]:
            raise ConnectionError("no broker")

    async def record(serving: bool) -> None:
        health.append(serving)

    deps = Dependencies({"Kafka": kafka}, record, outage_limit_s=60)
    await deps.probe_once()
    up["Kafka"] = False
    await deps.probe_once()
    up["Kafka"] = True
    await deps.probe_once()
    assert health == [True, False, True]


async def test_stop_ends_the_probes_when_it_comes_as_a_probe_returns() -> None:
    """SIGTERM may arrive just as a probe answers. On Python 3.11, a task cancelled while the
    `asyncio.wait_for` it awaits has just finished goes on as if not cancelled (cpython gh-86296): a probe
    loop built on it never ended, and a service hung on SIGTERM until it was killed."""

    async def ignore(serving: bool) -> None:
        pass

    stopping: list[asyncio.Task[None]] = []

    async def probe() -> None:
        if not stopping:  # the stop's first step runs before the probe's caller resumes
            stopping.append(asyncio.get_running_loop().create_task(deps.stop()))

    deps = Dependencies({"Kafka": probe}, ignore, outage_limit_s=60, interval_s=0.01)
    deps.start()
    async with asyncio.timeout(5):
        while not stopping:
            await asyncio.sleep(0.01)
    done, _ = await asyncio.wait(stopping, timeout=5)
    assert done, "Dependencies.stop() did not end: the probe loop swallowed its cancellation"


def test_migration_versions_are_unique() -> None:
    """Two branches may each add "the next" migration; their numbers must not clash."""
    from cancelguard import db

    versions = [version for version, _, _ in db.migration_files()]
    assert len(versions) == len(set(versions)), versions


async def test_liveness_is_serving_while_the_dependencies_are_not() -> None:
    from cancelguard.localstack import find_free_port
    from cancelguard.processes import health_status
    from cancelguard.runtime import LIVENESS, NOT_SERVING, SERVING, HealthServer

    port = find_free_port()
    server = HealthServer("cancelguard.test", "127.0.0.1", port)
    await server.start()
    try:
        address = f"127.0.0.1:{port}"
        assert await health_status(address) == NOT_SERVING
        assert await health_status(address, service="cancelguard.test") == NOT_SERVING
        assert await health_status(address, service=LIVENESS) == SERVING
        await server.set(True)
        assert await health_status(address) == SERVING
        assert await health_status(address, service=LIVENESS) == SERVING
    finally:
        await server.stop(0)


async def _stuck_forever() -> None:
    await asyncio.Event().wait()


async def test_a_shutdown_step_that_never_ends_is_abandoned_by_name_and_the_next_one_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "cancelguard.runtime")
    ran: list[str] = []

    async def closes() -> None:
        ran.append("closed")

    shutdown = Shutdown(budget_s=0.3, least_s=0.05)
    await shutdown.step("the stuck client", _stuck_forever())
    await shutdown.step("the next client", closes())
    shutdown.finished()
    assert ran == ["closed"]
    assert shutdown.abandoned == ["the stuck client"]
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "the stuck client did not finish" in warning.getMessage()
    assert "_stuck_forever" in warning.stack  # type: ignore[attr-defined]  # where it waited


async def test_steps_share_one_budget_even_when_a_step_ignores_cancellation() -> None:
    """Two slow steps end within the budget, not twice it; a client that swallows its cancellation (as
    `asyncio.wait_for` can on 3.11) cannot hold the shutdown either."""
    release = asyncio.Event()

    async def deaf() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue  # ignores being cancelled

    shutdown = Shutdown(budget_s=1.0, least_s=0.05)

    async def close_both() -> None:
        await shutdown.step("a deaf client", deaf())
        await shutdown.step("a stuck client", _stuck_forever())

    started = time.monotonic()
    done, _ = await asyncio.wait({asyncio.ensure_future(close_both())}, timeout=5)
    took = time.monotonic() - started
    release.set()  # let the deaf one end, so the test leaves nothing behind
    assert done, "the shutdown waited for a client that ignores cancellation"
    assert took < 1.6, took  # about 1.05 s; a budget per step would take 2
    assert shutdown.abandoned == ["a deaf client", "a stuck client"]


async def test_a_failing_shutdown_step_is_logged_and_the_next_one_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "cancelguard.runtime")

    async def fails() -> None:
        raise ConnectionResetError("the broker hung up")

    ran: list[str] = []

    async def closes() -> None:
        ran.append("closed")

    shutdown = Shutdown(budget_s=1.0)
    await shutdown.step("the producer", fails())
    await shutdown.step("the pool", closes())
    assert ran == ["closed"] and shutdown.abandoned == []
    assert any("the producer failed: the broker hung up" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("event_loop", ["asyncio", "uvloop"])
def test_a_service_runs_on_the_event_loop_named_and_its_answer_comes_back(event_loop: str) -> None:
    async def main() -> tuple[str, int]:
        await asyncio.sleep(0)
        return event_loop_name(), 7

    assert run_on_loop(main(), event_loop) == (event_loop, 7)


def test_an_event_loop_of_no_known_kind_is_refused_with_the_kinds_there_are() -> None:
    async def main() -> None:
        raise AssertionError("never run")

    coroutine = main()
    with pytest.raises(ValueError, match="no event loop named 'trio': use asyncio or uvloop"):
        run_on_loop(coroutine, "trio")
    coroutine.close()


def test_serve_api_with_an_event_loop_of_no_known_kind_says_so_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cancelguard import cli

    monkeypatch.setenv("CANCELGUARD_API_EVENT_LOOP", "trio")
    assert cli.main(["serve", "api"]) == 2
    err = capsys.readouterr().err
    assert "bad setting" in err and "api_event_loop" in err and "'uvloop' or 'asyncio'" in err, err
