"""Small helpers shared by the local Kafka and Postgres managers: paths, ports, processes, messages."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

LOOPBACK = "127.0.0.1"

# Progress lines for people ("Kafka up at ..."); tests pass their own to keep output quiet.
Say = Callable[[str], None]


def say_stdout(line: str) -> None:
    print(line, flush=True)


def say_nothing(line: str) -> None:
    pass


class LocalStackError(RuntimeError):
    """A local Kafka/Postgres problem with a message that says what to do about it."""


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    running: bool
    address: str | None  # host:port, or None when stopped
    pid: int | None
    home: Path
    detail: str = ""

    def line(self) -> str:
        if self.running:
            extra = f" - {self.detail}" if self.detail else ""
            return f"{self.name}: running at {self.address} (pid {self.pid}, state in {self.home}){extra}"
        return f"{self.name}: stopped{' - ' + self.detail if self.detail else ''} (state in {self.home})"


# --- where things live -------------------------------------------------------------------------------

REPO_MARKER = Path("deploy/local/pom.xml")


def repo_root() -> Path:
    """The clone this package runs from: deploy/local/ holds the Kafka recipe and configs."""
    override = os.environ.get("CANCELGUARD_REPO_ROOT")
    if override:
        root = Path(override).expanduser().resolve()
        if not (root / REPO_MARKER).is_file():
            raise LocalStackError(f"CANCELGUARD_REPO_ROOT={override} has no {REPO_MARKER}")
        return root
    for parent in Path(__file__).resolve().parents:
        if (parent / REPO_MARKER).is_file():
            return parent
    raise LocalStackError(
        f"cannot find {REPO_MARKER} above {Path(__file__).resolve().parent}: the local stack needs a "
        "clone of the cancelguard repository (an installed wheel does not carry deploy/). Run it from a "
        "clone, or set CANCELGUARD_REPO_ROOT to one."
    )


def deploy_dir() -> Path:
    return repo_root() / "deploy" / "local"


def local_home() -> Path:
    """Root of all local state (data, logs, fetched jars): CANCELGUARD_LOCAL_HOME or <repo>/.local."""
    override = os.environ.get("CANCELGUARD_LOCAL_HOME")
    if override:
        return Path(override).expanduser().resolve()
    return repo_root() / ".local"


# --- ports -------------------------------------------------------------------------------------------


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    # SO_REUSEADDR as the servers themselves use it, so a port in TIME_WAIT does not count as taken
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            if err.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def find_free_port(host: str = LOOPBACK) -> int:
    """A port nobody listens on right now (the kernel picks it; another process could still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_taken_message(what: str, host: str, port: int, home: Path, env_var: str) -> str:
    return (
        f"cannot start {what}: {host}:{port} is already in use by another process (not the {what} whose "
        f"state is in {home}). Stop that process (`ss -ltnp 'sport = :{port}'` shows it) or pick another "
        f"port with {env_var}=<port>."
    )


# --- processes ---------------------------------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    """True if the process exists and is not a zombie (a zombie still answers kill(pid, 0))."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        # field 3 is the state; the command name before it may contain spaces, hence rsplit on ')'
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def pid_cmdline(pid: int) -> str | None:
    """The process's command line joined by spaces, or None where /proc is not available."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def stop_process_group(pid: int, timeout: float) -> bool:
    """SIGTERM the process group led by pid, wait up to timeout, then SIGKILL. True if it had to kill."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    if wait_until(lambda: not pid_alive(pid), timeout):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    wait_until(lambda: not pid_alive(pid), 10)
    return True


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


# --- logs --------------------------------------------------------------------------------------------


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode(errors="replace")
    except OSError:
        return f"(no log at {path})"
    tail = text.splitlines()[-lines:]
    return "\n".join(f"    {line}" for line in tail) or f"    (empty log {path})"


def rotate_log(path: Path) -> None:
    """Keep the previous run's log as <name>.1 so each run starts a fresh, bounded file."""
    if path.exists():
        path.replace(path.with_name(path.name + ".1"))
