"""WatchCancellationRequests: the request change log (migration 0004) as a stream, resumable.

Each message carries a resume token: the log position of the last change sent, signed and bound to the
caller and the watch's filters. A watch started with it sends the changes after that position, so a
client that reconnects (after a network failure, or after this server restarted) sees every change
exactly once: the log is read only up to the oldest transaction still running, so no change can later
appear before a position already given out.

A watcher wakes when Postgres notifies a change for one of its seller accounts, and polls every
`POLL_S` in any case (a notification can be missed while the listener reconnects).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from cancelguard.api import errors, validation
from cancelguard.api.errors import ApiError
from cancelguard.api.reads import Reads
from cancelguard.api.records import Change, Position, Records
from cancelguard.api.wiring import InFlight
from cancelguard.api.writes import RETENTION
from cancelguard.v1 import metrics_pb2, orders_pb2

POLL_S = 1.0
BATCH = 200

_KINDS = {
    k: orders_pb2.CancellationRequestChange.Kind.Value(f"KIND_{k}")
    for k in ("OPENED", "CHANGED", "CLOSED", "ANSWERED")
}


class Watchers:
    """The watches running in this server, woken by the read cache's listener."""

    def __init__(
        self,
        records: Records,
        reads: Reads,
        tokens: validation.PageTokens,
        in_flight: InFlight,
        *,
        limit: int,
    ) -> None:
        self.records = records
        self.reads = reads
        self.tokens = tokens
        self.in_flight = in_flight
        self.limit = limit
        self._wakers: dict[int, tuple[frozenset[str], asyncio.Event]] = {}

    def changed(self, seller: str) -> None:
        """A notification: changes were logged for `seller` ("*": for many)."""
        for sellers, event in self._wakers.values():
            if seller == "*" or seller in sellers:
                event.set()

    async def watch(
        self,
        sellers: Sequence[str],
        marketplace_id: str,
        query: dict[str, str],
        resume_token: str,
        keepalive_s: float,
    ) -> AsyncIterator[orders_pb2.WatchCancellationRequestsResponse]:
        if len(self._wakers) >= self.limit:
            raise ApiError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "TOO_MANY_WATCHES",
                f"this server runs {self.limit} watches already; retry later or on another replica",
            )
        position = await self._start(resume_token, query)
        wake = asyncio.Event()
        me = id(wake)
        self._wakers[me] = (frozenset(sellers), wake)
        try:
            quiet_since = time.monotonic()
            while not self.in_flight.closing.is_set():
                changes = await self.records.changes(position, sellers, marketplace_id, BATCH)
                for change in changes:
                    position = change.position
                    yield await self._message(change, self._token(position, query))
                if changes:
                    quiet_since = time.monotonic()
                    if len(changes) == BATCH:
                        continue
                if time.monotonic() - quiet_since >= keepalive_s:
                    quiet_since = time.monotonic()
                    now = Timestamp()
                    now.GetCurrentTime()
                    yield orders_pb2.WatchCancellationRequestsResponse(
                        keepalive=metrics_pb2.Keepalive(sent_at=now),
                        resume_token=self._token(position, query),
                    )
                await self._sleep(wake, min(POLL_S, keepalive_s))
            raise errors.SHUTTING_DOWN
        finally:
            self._wakers.pop(me, None)

    async def _sleep(self, wake: asyncio.Event, seconds: float) -> None:
        waits = [asyncio.ensure_future(e.wait()) for e in (wake, self.in_flight.closing)]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
            wake.clear()

    async def _start(self, resume_token: str, query: dict[str, str]) -> Position:
        if not resume_token:
            return await self.records.now_position()
        position = self.tokens.decode(resume_token, query, field="resume_token")
        issued = datetime.fromtimestamp(int(position["iat"]), UTC)
        if datetime.now(UTC) - issued > RETENTION:
            raise errors.failed_precondition(
                "RESUME_TOKEN_EXPIRED",
                f"the resume token is older than the change log's retention ({RETENTION.days} days): "
                "list the open requests with ListCancellationRequests and start a new watch",
            )
        return Position(int(position["tx"]), int(position["seq"]))

    def _token(self, position: Position, query: dict[str, str]) -> str:
        return self.tokens.encode(
            query, {"tx": str(position.tx), "seq": str(position.seq), "iat": str(int(time.time()))}
        )

    async def _message(self, change: Change, token: str) -> orders_pb2.WatchCancellationRequestsResponse:
        found = await self.reads.entries(
            change.seller_account, change.marketplace_id, [change.amazon_order_id], timeout=None
        )
        order = found.get(change.amazon_order_id)
        at = Timestamp()
        at.FromDatetime(change.changed_at)
        message = orders_pb2.CancellationRequestChange(kind=_KINDS[change.kind], changed_at=at)
        if order is not None:
            message.order.ParseFromString(order.message)
        return orders_pb2.WatchCancellationRequestsResponse(change=message, resume_token=token)
