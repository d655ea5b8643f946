"""Run the three services as child processes: for `cancelguard demo`/`run` and the end-to-end tests.

Each service is `python -m cancelguard serve <name>` with the given environment, logging JSON lines to a
file. `wait_healthy` asks each one's gRPC health service until it says SERVING; `stop` sends SIGTERM (what
Kubernetes sends) and reports the exit codes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import SecretStr

from cancelguard.config import Settings

SERVICES = ("ingestion", "metrics", "api")
POLLERS = "pollers"  # started only where seller accounts are configured (CANCELGUARD_ACCOUNTS_FILE)


def health_port(settings: Settings, service: str) -> int:
    return {
        "ingestion": settings.ingestion_health_port,
        "metrics": settings.metrics_health_port,
        "api": settings.api_port,
        POLLERS: settings.pollers_health_port,
    }[service]


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a child process exactly these settings."""
    env = {
        f"CANCELGUARD_{name.upper()}": value.get_secret_value()
        if isinstance(value, SecretStr)
        else str(value)
        for name, value in settings.model_dump().items()
    }
    return {**os.environ, **env}


async def health_status(address: str, timeout: float = 1.0, service: str = "") -> int | None:
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.aio.AioRpcError:
            return None
        return int(reply.status)


@dataclass
class ServiceProcesses:
    settings: Settings
    log_dir: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, names: tuple[str, ...] = SERVICES) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = settings_env(self.settings)
        for name in names:
            with open(self.log_dir / f"{name}.log", "ab") as log:  # the child keeps its own copy
                self.procs[name] = subprocess.Popen(
                    [sys.executable, "-m", "cancelguard", "serve", name],
                    env=env,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                )

    def kill(self, name: str) -> None:
        """SIGKILL: no chance to finish anything (a crash, an OOM kill)."""
        self.procs[name].kill()
        self.procs[name].wait(10)

    def log_tail(self, name: str, lines: int = 15) -> str:
        path = self.log_dir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def log_records(self, name: str) -> list[dict[str, Any]]:
        """A service's JSON log lines, parsed (what is not one, such as a crash's raw output, is left out)."""
        path = self.log_dir / f"{name}.log"
        records = []
        for line in path.read_text(errors="replace").splitlines() if path.exists() else ():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records

    async def wait_healthy(self, timeout: float = 90.0) -> None:
        """Until every started service says SERVING."""
        deadline = time.monotonic() + timeout
        waiting = set(self.procs)
        while waiting:
            for name in sorted(waiting):
                code = self.procs[name].poll()
                if code is not None:
                    raise RuntimeError(
                        f"the {name} service exited with code {code} while starting; its log "
                        f"({self.log_dir / (name + '.log')}) ends with:\n{self.log_tail(name)}"
                    )
                address = f"127.0.0.1:{health_port(self.settings, name)}"
                if await health_status(address) == health_pb2.HealthCheckResponse.SERVING:
                    waiting.discard(name)
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"not healthy after {timeout:.0f}s: {', '.join(sorted(waiting))}; see the logs "
                    f"in {self.log_dir}"
                )
            await asyncio.sleep(0.2)

    def stop(self, timeout: float = 30.0) -> dict[str, int | None]:
        """SIGTERM every service, wait, SIGKILL what is left. Returns the exit codes (None: killed).

        Before the SIGKILL, a service still running is asked (SIGUSR1) to log where each of its tasks
        waits, so that its log says why it did not stop."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes: dict[str, int | None] = {}
        deadline = time.monotonic() + timeout
        for name, proc in self.procs.items():
            try:
                codes[name] = proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGUSR1)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(2)  # time to write the stacks; it is not expected to exit
                proc.kill()
                proc.wait(10)
                codes[name] = None
        return codes
