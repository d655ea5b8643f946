"""Who is calling: a bearer token per calling service, each allowed a set of seller accounts.

The callers file (a Kubernetes Secret mounted as a file, path in CANCELGUARD_API_CALLERS_FILE) is TOML:

    [callers.oms]
    token_sha256 = ["<64 hex digits>"]           # one or more: add the new one, roll out, drop the old
    seller_accounts = ["A1DEMOSELLERUS", "A2DEMOSELLERDE"]

Tokens are stored as SHA-256 digests only. They are random 32-byte secrets (`cancelguard api-token`
makes one), not passwords, so a fast hash is enough: there is nothing to guess from a digest, and
checking costs a microsecond per call instead of a key-stretching function's milliseconds. A presented
token is hashed and compared with every stored digest in constant time (`hmac.compare_digest`), so the
time taken says nothing about which digest, or how much of one, matched. A token that matched is
remembered by that version of the file, so a caller's next calls skip the hash; a wrong one never is.

The file is read again when it changes (checked every `reload_s`, which follows a Secret's atomic
symlink swap) and on SIGHUP; a file that does not parse leaves the callers as they were, and says why.
Tokens are never logged; the caller's name is, and labels the Prometheus series.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
import signal
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cancelguard.domain import bounds
from cancelguard.domain.model import InvalidInput

log = logging.getLogger("cancelguard.api.auth")

_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class Caller:
    """A calling service and the seller accounts it may see and act for."""

    name: str
    seller_accounts: frozenset[str]

    def may_see(self, seller_account: str) -> bool:
        return seller_account in self.seller_accounts


class CallersFileError(ValueError):
    """The callers file cannot be used; the message says where (never a token)."""


@dataclass(frozen=True, slots=True)
class Callers:
    """One version of the callers file."""

    by_digest: tuple[tuple[bytes, Caller], ...] = ()
    # tokens that matched, so a caller's next calls skip the hashing; only good tokens are kept (they
    # are as many as the file's digests at most), and a new version of the file starts without them
    _known: dict[str, Caller] = field(default_factory=dict, compare=False, repr=False)

    def authenticate(self, token: str) -> Caller | None:
        found = self._known.get(token)
        if found is not None:
            return found
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        for stored, caller in self.by_digest:  # every digest, whatever matches: constant time
            if hmac.compare_digest(stored, digest):
                found = caller
        if found is not None:
            self._known[token] = found
        return found

    @property
    def names(self) -> list[str]:
        return sorted({c.name for _, c in self.by_digest})


def token_digest(token: str) -> str:
    """The hex digest the callers file stores for `token`."""
    return hashlib.sha256(token.encode()).hexdigest()


def parse_callers(text: str, where: str = "callers file") -> Callers:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CallersFileError(f"{where}: not TOML: {exc}") from None
    table = doc.get("callers", {})
    if not isinstance(table, Mapping):
        raise CallersFileError(f"{where}: [callers] must be a table of calling services")
    entries: list[tuple[bytes, Caller]] = []
    seen: set[bytes] = set()
    for name, spec in table.items():
        entries += _caller_entries(name, spec, f"{where}: callers.{name}", seen)
    return Callers(tuple(entries))


def _caller_entries(name: str, spec: Any, where: str, seen: set[bytes]) -> list[tuple[bytes, Caller]]:
    try:
        bounds.identifier(name, "the caller's name")
    except InvalidInput as exc:
        raise CallersFileError(f"{where}: {exc}") from None
    if not isinstance(spec, Mapping):
        raise CallersFileError(f"{where} must be a table")
    unknown = set(spec) - {"token_sha256", "seller_accounts"}
    if unknown:
        raise CallersFileError(f"{where}: unknown keys {sorted(unknown)}")
    digests = spec.get("token_sha256", [])
    digests = [digests] if isinstance(digests, str) else digests
    if not isinstance(digests, list) or not digests:
        raise CallersFileError(f"{where}: token_sha256 must list one or more SHA-256 hex digests")
    sellers = spec.get("seller_accounts", [])
    if not isinstance(sellers, list):
        raise CallersFileError(f"{where}: seller_accounts must be a list")
    try:
        accounts = frozenset(bounds.identifier(s, "a seller account") for s in sellers)
    except InvalidInput as exc:
        raise CallersFileError(f"{where}: {exc}") from None
    caller = Caller(name, accounts)
    entries = []
    for n, digest in enumerate(digests):
        if not isinstance(digest, str) or len(digest) != 64 or not set(digest.lower()) <= _HEX:
            raise CallersFileError(f"{where}: token_sha256[{n}] is not 64 hex digits")
        raw = bytes.fromhex(digest)
        if raw in seen:
            raise CallersFileError(f"{where}: token_sha256[{n}] is another caller's token too")
        seen.add(raw)
        entries.append((raw, caller))
    return entries


class CallerRegistry:
    """The callers in force, following the file."""

    def __init__(self, path: Path | None, *, reload_s: float = 2.0) -> None:
        self.path = path
        self.reload_s = reload_s
        self.callers = Callers()
        self._version: tuple[int, int, int] | None = None
        self._task: asyncio.Task[None] | None = None

    def _stat(self) -> tuple[int, int, int] | None:
        assert self.path is not None
        try:
            st = os.stat(self.path)  # follows the symlink a Kubernetes Secret swaps atomically
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def load(self) -> None:
        """Read the file now; raises CallersFileError. A file that is missing or broken is read again
        once it changes (a Secret mounted after the pod started, a fix)."""
        if self.path is None:
            log.warning("CANCELGUARD_API_CALLERS_FILE is not set: every call will be UNAUTHENTICATED")
            return
        self._version = self._stat()
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise CallersFileError(f"{self.path}: cannot read: {exc.strerror}") from None
        self.callers = parse_callers(text, str(self.path))
        log.info(
            "callers loaded",
            extra={"callers_file": str(self.path), "callers": self.callers.names},
        )

    def reload(self) -> bool:
        """Read the file again; keep the callers in force if it does not parse. True when it changed."""
        try:
            self.load()
        except CallersFileError as exc:
            log.error("callers file not (re)loaded, the callers in force stay (none at start): %s", exc)
            return False
        return True

    def reload_if_changed(self) -> None:
        if self.path is not None and self._stat() != self._version:
            self.reload()

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):  # no signals off the main thread
            loop.add_signal_handler(signal.SIGHUP, self.reload)
        if self.path is not None:
            self._task = asyncio.create_task(self._watch(), name="callers-file-watch")

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.reload_s)
            self.reload_if_changed()

    async def stop(self) -> None:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
