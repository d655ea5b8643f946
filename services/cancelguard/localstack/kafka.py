"""One Apache Kafka node (broker + KRaft controller) as a local process, and Kafka's own tools.

The jars come from Maven Central through deploy/local/pom.xml (fetched once, then cached); the JVM is
the machine's Java 17+. See deploy/local/README.md.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import socket
import string
import struct
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from ._common import (
    LOOPBACK,
    LocalStackError,
    Say,
    ServiceStatus,
    deploy_dir,
    local_home,
    log_tail,
    pid_alive,
    pid_cmdline,
    port_is_free,
    port_taken_message,
    read_pid,
    rotate_log,
    say_stdout,
    stop_process_group,
)

MIN_JAVA = 17
READY_LINE = "Kafka Server started"  # logged by KafkaRaftServer once the broker serves clients
BROKER_MAIN = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"
CONSOLE_CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"
CONSOLE_PRODUCER = "org.apache.kafka.tools.ConsoleProducer"
PRODUCER_PERF_TEST = "org.apache.kafka.tools.ProducerPerformance"


# --- Java and the fetched jars ----------------------------------------------------------------------


def find_java() -> tuple[str, int]:
    """The java executable (JAVA_HOME first, then PATH) and its major version; errors say what to install."""
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not Path(java).is_file():
        raise LocalStackError(
            f"Java {MIN_JAVA}+ is needed to run the local Kafka broker, and no `java` was found "
            f"({'JAVA_HOME=' + java_home if java_home else 'not on PATH'}). Install a JDK/JRE {MIN_JAVA} "
            "or newer (e.g. `apt-get install openjdk-17-jre-headless`), or use a Kafka you already have "
            "through CANCELGUARD_TEST_KAFKA_BOOTSTRAP."
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        raise LocalStackError(f"cannot tell the version of {java}: {(out.stderr or out.stdout).strip()}")
    major = int(match[1])
    if major == 1 and match[2]:  # "1.8.0_392" is Java 8
        major = int(match[2])
    if major < MIN_JAVA:
        raise LocalStackError(
            f"Kafka 4 needs Java {MIN_JAVA}+, but {java} is Java {major}. Install Java {MIN_JAVA} or newer "
            "and put it first on PATH or in JAVA_HOME."
        )
    return java, major


def _pom_property(pom: Path, name: str) -> str:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    node = ET.parse(pom).getroot().find(f"m:properties/m:{name}", ns)
    if node is None or not (node.text or "").strip():
        raise LocalStackError(f"{pom} has no <{name}> property")
    return (node.text or "").strip()


class KafkaDist:
    """Kafka's broker and tool jars, fetched by Maven from deploy/local/pom.xml into one cached directory.

    The cache is keyed by the pom's content: a stamp file holds its sha256, so a second `ensure()` neither
    downloads anything nor starts Maven, and editing the pom (e.g. the Kafka version) fetches again.
    """

    def __init__(self, cache_dir: Path | None = None, *, say: Say = say_stdout) -> None:
        self.pom = deploy_dir() / "pom.xml"
        self.log4j_config = deploy_dir() / "log4j2.xml"
        self.version = _pom_property(self.pom, "kafka.version")
        self.dir = (cache_dir or local_home() / "cache") / f"kafka-{self.version}"
        self.libs = self.dir / "libs"
        self._stamp = self.dir / "fetched.sha256"
        self._say = say
        self._java: str | None = None

    @property
    def classpath(self) -> str:
        # the JVM expands "dir/*" to every jar in dir itself (no shell involved)
        return f"{self.libs}/*"

    @property
    def java(self) -> str:
        if self._java is None:
            self._java, _ = find_java()
        return self._java

    def is_fetched(self) -> bool:
        try:
            return self._stamp.read_text().strip() == self._pom_digest() and any(
                self.libs.glob("kafka_*.jar")
            )
        except OSError:
            return False

    def ensure(self) -> KafkaDist:
        """Check Java, fetch the jars unless the cache already matches the pom. Returns self."""
        _ = self.java
        if self.is_fetched():
            return self
        self.dir.mkdir(parents=True, exist_ok=True)
        # one fetch at a time when several processes (e.g. parallel test sessions) start together
        with (self.dir.parent / f".kafka-{self.version}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not self.is_fetched():
                self._fetch()
        return self

    def _pom_digest(self) -> str:
        return hashlib.sha256(self.pom.read_bytes()).hexdigest()

    def _fetch(self) -> None:
        mvn = shutil.which("mvn")
        if not mvn:
            raise LocalStackError(
                f"Maven (`mvn`) is needed once to fetch Kafka {self.version} from Maven Central into "
                f"{self.dir}, and it is not on PATH. Install it (e.g. `apt-get install maven`), or copy "
                f"a fetched {self.dir} from another machine."
            )
        self._say(f"fetching Kafka {self.version} from Maven Central into {self.libs} (first run only)...")
        started = time.monotonic()
        staging = self.dir / f"libs.partial-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        cmd = [
            mvn,
            "-q",
            "-B",
            "-ntp",
            "-Dstyle.color=never",
            "-f",
            str(self.pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}",
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        if out.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            detail = "\n".join((out.stdout + out.stderr).strip().splitlines()[-30:])
            raise LocalStackError(f"fetching Kafka {self.version} failed ({' '.join(cmd)}):\n{detail}")
        # swap in the complete directory, then stamp it: an interrupted fetch is never taken for a good one
        shutil.rmtree(self.libs, ignore_errors=True)
        staging.rename(self.libs)
        self._stamp.write_text(self._pom_digest() + "\n")
        jars = list(self.libs.glob("*.jar"))
        size_mb = sum(j.stat().st_size for j in jars) / 1e6
        self._say(f"fetched {len(jars)} jars ({size_mb:.0f} MB) in {time.monotonic() - started:.0f}s")

    def java_command(
        self, main_class: str, *args: str, jvm_options: Sequence[str] = (), log_level: str = "WARN"
    ) -> list[str]:
        """argv that runs a main class from Kafka's jars, e.g. a tool:

        java_command(CONSOLE_CONSUMER, "--bootstrap-server", "127.0.0.1:9092", "--topic", "t", ...)
        Call ensure() first (LocalKafka.start() does).
        """
        return [
            self.java,
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.log4j_config}",
            f"-Dcancelguard.log.level={log_level}",
            *jvm_options,
            "-cp",
            self.classpath,
            main_class,
            *args,
        ]

    def run_tool(
        self,
        main_class: str,
        args: Sequence[str],
        *,
        timeout: float | None = 120,
        check: bool = True,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run one of Kafka's own tools to completion and capture its output (stdout = data, stderr = logs).

        run_tool(CONSOLE_CONSUMER, ["--bootstrap-server", b, "--topic", t, "--from-beginning",
                                    "--max-messages", "10", "--timeout-ms", "20000"])
        """
        self.ensure()
        out = subprocess.run(
            self.java_command(main_class, *args),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
        if check and out.returncode != 0:
            raise LocalStackError(
                f"{main_class} exited with {out.returncode}:\n"
                + "\n".join(out.stderr.strip().splitlines()[-30:])
            )
        return out


# --- the broker -------------------------------------------------------------------------------------


def kafka_answers(host: str, port: int, timeout: float = 2.0) -> bool:
    """True if a Kafka broker at host:port answers an ApiVersions request (a real Kafka API round trip).

    Hand-encoded (request header v1, ApiVersions v0) so it needs no event loop and no client library.
    """
    correlation_id = 7
    client_id = b"cancelguard-localstack"
    body = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(struct.pack(">i", len(body)) + body)
            (size,) = struct.unpack(">i", _recv_exact(sock, 4))
            payload = _recv_exact(sock, size)
    except (OSError, ConnectionError, struct.error):
        return False
    got_id, error_code = struct.unpack_from(">ih", payload)
    return got_id == correlation_id and error_code == 0


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return buf


def new_cluster_id() -> str:
    """A KRaft cluster id as `kafka-storage random-uuid` prints it: url-safe base64 of 16 random bytes."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):  # Kafka avoids these too: they read as an option on a command line
            return cluster_id


class LocalKafka:
    """A single-node Kafka (broker + KRaft controller) on loopback, state under `home`.

    home/server.properties   written from deploy/local/kafka-server.properties at each start
    home/data/               the log dirs (formatted on first start)
    home/kafka.log           broker log of the current run (previous run: kafka.log.1)
    home/kafka.pid           pid of the detached JVM (own process group, survives the caller)
    """

    def __init__(
        self,
        home: Path | None = None,
        *,
        port: int = 9092,
        controller_port: int = 9093,
        host: str = LOOPBACK,
        dist: KafkaDist | None = None,
        heap: str = "512m",
        say: Say = say_stdout,
    ) -> None:
        self.home = (home or local_home() / "kafka").resolve()
        self.host = host
        self.port = port
        self.controller_port = controller_port
        self.heap = heap
        self.dist = dist or KafkaDist(say=say)
        self.data_dir = self.home / "data"
        self.properties = self.home / "server.properties"
        self.log_file = self.home / "kafka.log"
        self.pid_file = self.home / "kafka.pid"
        self._say = say
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def version(self) -> str:
        return self.dist.version

    @property
    def bootstrap(self) -> str:
        """host:port of the running broker (the configured one when stopped)."""
        return f"{self.host}:{self._running_port() or self.port}"

    @property
    def classpath(self) -> str:
        return self.dist.classpath

    def java_command(self, main_class: str, *args: str) -> list[str]:
        """argv for one of Kafka's own tools on this broker's jars (see KafkaDist.java_command)."""
        return self.dist.java_command(main_class, *args)

    def run_tool(
        self, main_class: str, args: Sequence[str], *, timeout: float | None = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run one of Kafka's own tools to completion (see KafkaDist.run_tool)."""
        return self.dist.run_tool(main_class, args, timeout=timeout, check=check)

    # --- lifecycle -----------------------------------------------------------------------------------

    def running_pid(self) -> int | None:
        pid = read_pid(self.pid_file)
        if pid is None or not pid_alive(pid):
            return None
        cmdline = pid_cmdline(pid)
        # a recycled pid belongs to some other program: only our JVM has our properties file in its argv
        if cmdline is not None and (BROKER_MAIN not in cmdline or str(self.properties) not in cmdline):
            return None
        return pid

    def is_running(self) -> bool:
        return self.running_pid() is not None

    def start(self, timeout: float = 120.0) -> str:
        """Start the broker unless it already runs; returns the bootstrap address once it serves requests."""
        pid = self.running_pid()
        if pid is not None:
            self._say(f"Kafka already running at {self.bootstrap} (pid {pid})")
            return self.bootstrap
        # ports first: a clash is reported at once, not after a long first fetch
        for port in (self.port, self.controller_port):
            if not port_is_free(port, self.host):
                env = (
                    "CANCELGUARD_LOCAL_KAFKA_PORT"
                    if port == self.port
                    else "CANCELGUARD_LOCAL_KAFKA_CONTROLLER_PORT"
                )
                raise LocalStackError(port_taken_message("Kafka", self.host, port, self.home, env))
        self.dist.ensure()
        self.home.mkdir(parents=True, exist_ok=True)
        self._write_properties()
        if not (self.data_dir / "meta.properties").exists():
            self._format_storage()

        self._say(f"starting Kafka {self.version} at {self.host}:{self.port}...")
        started = time.monotonic()
        rotate_log(self.log_file)
        with self.log_file.open("ab") as log:
            self._proc = subprocess.Popen(
                self.dist.java_command(
                    BROKER_MAIN,
                    str(self.properties),
                    log_level="INFO",
                    jvm_options=[f"-Xmx{self.heap}", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20"],
                ),
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: outlives the caller, stopped as a group
            )
        self.pid_file.write_text(f"{self._proc.pid}\n")
        self._wait_ready(self._proc, timeout)
        self._say(f"Kafka up at {self.bootstrap} in {time.monotonic() - started:.1f}s (log: {self.log_file})")
        return self.bootstrap

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (Kafka shuts down cleanly), then SIGKILL after `timeout` seconds."""
        pid = self.running_pid()
        if pid is None:
            self._say("Kafka is not running")
            self.pid_file.unlink(missing_ok=True)
            return
        self._say(f"stopping Kafka (pid {pid})...")
        killed = stop_process_group(pid, timeout)
        if self._proc is not None and self._proc.pid == pid:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5)  # reap our own child so it does not linger as a zombie
            self._proc = None
        self.pid_file.unlink(missing_ok=True)
        self._say("Kafka killed after not stopping in time" if killed else "Kafka stopped")

    def status(self) -> ServiceStatus:
        pid = self.running_pid()
        if pid is None:
            return ServiceStatus("kafka", False, None, None, self.home)
        answers = kafka_answers(self.host, self._running_port() or self.port)
        return ServiceStatus(
            "kafka",
            True,
            self.bootstrap,
            pid,
            self.home,
            "" if answers else "process alive but not answering",
        )

    # --- helpers -------------------------------------------------------------------------------------

    def _running_port(self) -> int | None:
        if self.running_pid() is None:
            return None
        with contextlib.suppress(OSError):
            match = re.search(
                r"^advertised\.listeners=PLAINTEXT://[^:]+:(\d+)", self.properties.read_text(), re.M
            )
            if match:
                return int(match[1])
        return None

    def _write_properties(self) -> None:
        template = string.Template((deploy_dir() / "kafka-server.properties").read_text())
        self.properties.write_text(
            template.substitute(
                host=self.host,
                port=self.port,
                controller_port=self.controller_port,
                data_dir=self.data_dir,
            )
        )

    def _format_storage(self) -> None:
        self._say(f"formatting Kafka storage in {self.data_dir} (first start only)...")
        cmd = self.dist.java_command(
            STORAGE_TOOL, "format", "-t", new_cluster_id(), "-c", str(self.properties)
        )
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        if out.returncode != 0:
            raise LocalStackError(f"formatting Kafka storage failed:\n{(out.stdout + out.stderr).strip()}")

    def _wait_ready(self, proc: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = proc.poll()
            if code is not None:
                self.pid_file.unlink(missing_ok=True)
                raise LocalStackError(
                    f"Kafka exited with code {code} while starting; last lines of {self.log_file}:\n"
                    f"{log_tail(self.log_file)}"
                )
            # the log line says startup finished; the ApiVersions round trip proves the listener answers
            if READY_LINE in self.log_file.read_text(errors="replace") and kafka_answers(
                self.host, self.port
            ):
                return
            time.sleep(0.2)
        self.stop()
        raise LocalStackError(
            f"Kafka did not answer at {self.host}:{self.port} within {timeout:.0f}s; last lines of "
            f"{self.log_file}:\n{log_tail(self.log_file)}"
        )
