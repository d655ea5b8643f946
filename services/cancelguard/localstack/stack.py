"""The local stack for development: Kafka and Postgres as processes, with defaults from the environment.

    python -m cancelguard.localstack up|down|status [kafka] [postgres]
    python -m cancelguard.localstack fetch           # only fetch Kafka's jars (e.g. to warm a CI cache)
    python -m cancelguard.localstack tool MAIN_CLASS [ARGS...]   # run one of Kafka's own tools

Environment (all optional):
    CANCELGUARD_LOCAL_HOME                     state, logs and fetched jars (default <repo>/.local)
    CANCELGUARD_LOCAL_KAFKA_PORT               Kafka listener on 127.0.0.1 (default 9092)
    CANCELGUARD_LOCAL_KAFKA_CONTROLLER_PORT    KRaft controller listener (default Kafka port + 1)
    CANCELGUARD_LOCAL_POSTGRES_PORT            Postgres on 127.0.0.1 (default 55432, clear of a system 5432)
    CANCELGUARD_REPO_ROOT                      the clone holding deploy/local/ (default: found from this file)
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ._common import LocalStackError, Say, ServiceStatus, local_home, say_stdout
from .kafka import KafkaDist, LocalKafka
from .postgres import LocalPostgres

SERVICES = ("kafka", "postgres")


def _env_port(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        port = int(raw)
    except ValueError:
        raise LocalStackError(f"{name}={raw!r} is not a port number") from None
    if not 0 < port < 65536:
        raise LocalStackError(f"{name}={port} is not a port number")
    return port


@dataclass(frozen=True)
class StackConfig:
    home: Path
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    postgres_port: int = 55432

    @classmethod
    def from_env(cls) -> StackConfig:
        kafka_port = _env_port("CANCELGUARD_LOCAL_KAFKA_PORT", 9092)
        return cls(
            home=local_home(),
            kafka_port=kafka_port,
            kafka_controller_port=_env_port("CANCELGUARD_LOCAL_KAFKA_CONTROLLER_PORT", kafka_port + 1),
            postgres_port=_env_port("CANCELGUARD_LOCAL_POSTGRES_PORT", 55432),
        )


def local_kafka(config: StackConfig | None = None, *, say: Say = say_stdout) -> LocalKafka:
    config = config or StackConfig.from_env()
    return LocalKafka(
        config.home / "kafka",
        port=config.kafka_port,
        controller_port=config.kafka_controller_port,
        dist=KafkaDist(config.home / "cache", say=say),
        say=say,
    )


def local_postgres(config: StackConfig | None = None, *, say: Say = say_stdout) -> LocalPostgres:
    config = config or StackConfig.from_env()
    return LocalPostgres(config.home / "postgres", port=config.postgres_port, say=say)


def _check(services: Sequence[str]) -> Sequence[str]:
    unknown = [s for s in services if s not in SERVICES]
    if unknown:
        raise LocalStackError(f"unknown service {', '.join(unknown)}; choose from {', '.join(SERVICES)}")
    return services or SERVICES


def up(services: Sequence[str] = SERVICES, *, say: Say = say_stdout) -> dict[str, str]:
    """Start what is not running yet; returns {"kafka": bootstrap, "postgres": dsn} for the requested ones."""
    services = _check(services)
    config = StackConfig.from_env()
    addresses: dict[str, str] = {}
    # Postgres first: it starts in about a second and fails fast (missing wheel) before a long Kafka fetch
    if "postgres" in services:
        addresses["postgres"] = local_postgres(config, say=say).start()
    if "kafka" in services:
        addresses["kafka"] = local_kafka(config, say=say).start()
    return addresses


def down(services: Sequence[str] = SERVICES, *, say: Say = say_stdout) -> None:
    """Stop what runs; data stays in place for the next `up`."""
    services = _check(services)
    config = StackConfig.from_env()
    if "kafka" in services:
        local_kafka(config, say=say).stop()
    if "postgres" in services:
        local_postgres(config, say=say).stop()


def status(services: Sequence[str] = SERVICES) -> list[ServiceStatus]:
    services = _check(services)
    config = StackConfig.from_env()
    found = []
    if "kafka" in services:
        found.append(local_kafka(config).status())
    if "postgres" in services:
        found.append(local_postgres(config).status())
    return found


def fetch(*, say: Say = say_stdout) -> KafkaDist:
    """Fetch Kafka's jars unless cached (needs Java and Maven); returns the dist for its classpath."""
    dist = KafkaDist(StackConfig.from_env().home / "cache", say=say).ensure()
    say(f"Kafka {dist.version} jars ready in {dist.libs}")
    return dist


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cancelguard.localstack",
        description="Local Kafka and Postgres processes for development and tests.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("up", "start Kafka and/or Postgres"),
        ("down", "stop them (data is kept)"),
        ("status", "show what runs (exit 1 if something is stopped)"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument(
            "services", nargs="*", metavar="SERVICE", help="kafka and/or postgres (default: both)"
        )
    commands.add_parser("fetch", help="fetch Kafka's jars from Maven Central (cached)")
    tool = commands.add_parser("tool", help="run one of Kafka's own tools on the fetched classpath")
    tool.add_argument("main_class", help="e.g. org.apache.kafka.tools.consumer.ConsoleConsumer")
    tool.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)

    try:
        if args.command == "up":
            up(args.services or SERVICES)
        elif args.command == "down":
            down(args.services or SERVICES)
        elif args.command == "status":
            found = status(args.services or SERVICES)
            for item in found:
                print(item.line())
            return 0 if all(item.running for item in found) else 1
        elif args.command == "fetch":
            fetch()
        elif args.command == "tool":
            home = StackConfig.from_env().home
            dist = KafkaDist(home / "cache", say=lambda line: print(line, file=sys.stderr)).ensure()
            # exec: the tool owns the terminal (Ctrl-C, stdin for the console producer, exit code)
            cmd = dist.java_command(args.main_class, *args.args)
            os.execv(cmd[0], cmd)
    except LocalStackError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
