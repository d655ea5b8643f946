"""WatchAlerts: the metrics service's alerts topic (`cancelguard.events.v1.Alert`) as a stream.

Each watch reads every partition of the topic with a consumer of its own (no group: nothing is
committed, the position is the client's), from the positions its resume token holds (or the ends:
"from now"), keeps the alerts of the caller's seller accounts, and sends each with a token holding the
position right after it. The metrics service publishes each alert once (its outbox reads the topic back
before a retry); an id seen again within a watch is dropped all the same.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import grpc
from aiokafka import AIOKafkaConsumer, TopicPartition
from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp

from cancelguard.api import errors, validation
from cancelguard.api.errors import ApiError
from cancelguard.api.wiring import InFlight
from cancelguard.api.writes import RETENTION
from cancelguard.events.v1 import alert_pb2 as ev
from cancelguard.kafka import STOP_TIMEOUT_S, partitions_of
from cancelguard.v1 import metrics_pb2

SEEN_IDS = 10_000  # alert ids a watch remembers, to drop a record published twice
TOKEN_IDS = 8  # the latest of them a resume token carries: a twice-published record follows closely

_WINDOW = {
    ev.ALERT_WINDOW_LIVE: metrics_pb2.WINDOW_KIND_LIVE,
    ev.ALERT_WINDOW_AMAZON_ALIGNED: metrics_pb2.WINDOW_KIND_AMAZON_ALIGNED,
}
_LEVEL = {
    ev.LEVEL_WARNING: metrics_pb2.ALERT_LEVEL_WARNING,
    ev.LEVEL_THRESHOLD: metrics_pb2.ALERT_LEVEL_THRESHOLD,
}
_DIRECTION = {
    ev.DIRECTION_UP: metrics_pb2.ALERT_DIRECTION_UP,
    ev.DIRECTION_DOWN: metrics_pb2.ALERT_DIRECTION_DOWN,
}


def api_alert(alert: ev.Alert) -> metrics_pb2.Alert:
    """The topic's alert as the API's message (the API never sends the event messages themselves)."""
    out = metrics_pb2.Alert(
        alert_id=alert.alert_id,
        seller_account=alert.seller_account,
        marketplace_id=alert.marketplace_id,
        raised_at=alert.raised_at,
    )
    which = alert.WhichOneof("body")
    if which == "rate_crossing":
        r = alert.rate_crossing
        out.rate_crossing.CopyFrom(
            metrics_pb2.RateCrossing(
                window_kind=_WINDOW.get(r.window, metrics_pb2.WINDOW_KIND_UNSPECIFIED),
                window_days=r.window_days,
                window_start=r.window_start,
                window_end=r.window_end,
                level=_LEVEL.get(r.level, metrics_pb2.ALERT_LEVEL_UNSPECIFIED),
                direction=_DIRECTION.get(r.direction, metrics_pb2.ALERT_DIRECTION_UNSPECIFIED),
                cancelled_orders=r.cancelled_orders,
                total_orders=r.total_orders,
                rate=r.rate,
                level_rate=r.level_rate,
            )
        )
    elif which == "suppression_risk":
        s = alert.suppression_risk
        out.suppression_risk.CopyFrom(
            metrics_pb2.SuppressionRisk(
                seller_sku=s.seller_sku,
                amazon_order_ids=s.amazon_order_ids,
                explanation=(
                    f"two consecutive seller cancellations of {s.seller_sku}: Amazon may remove the offer"
                ),
            )
        )
    elif which == "amazon_difference":
        d = alert.amazon_difference
        out.amazon_difference.CopyFrom(
            metrics_pb2.AmazonDifference(
                window_start=d.window_start,
                window_end=d.window_end,
                amazon_rate=d.amazon_rate,
                our_rate=d.our_rate,
                amazon_cancelled_orders=d.amazon_cancelled_orders,
                amazon_total_orders=d.amazon_total_orders,
                our_cancelled_orders=d.our_cancelled_orders,
                our_total_orders=d.our_total_orders,
                tolerance=d.tolerance,
                direction=_DIRECTION.get(d.direction, metrics_pb2.ALERT_DIRECTION_UNSPECIFIED),
            )
        )
    return out


class AlertWatchers:
    def __init__(
        self, bootstrap: str, topic: str, tokens: validation.PageTokens, in_flight: InFlight, *, limit: int
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.tokens = tokens
        self.in_flight = in_flight
        self.limit = limit
        self.running = 0

    async def watch(
        self,
        sellers: Sequence[str],
        marketplace_id: str,
        query: dict[str, str],
        resume_token: str,
        keepalive_s: float,
    ) -> AsyncIterator[metrics_pb2.WatchAlertsResponse]:
        if self.running >= self.limit:
            raise ApiError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "TOO_MANY_WATCHES",
                f"this server runs {self.limit} alert watches already; retry later or on another replica",
            )
        resumed, recent = self._resumed(resume_token, query)
        wanted = frozenset(sellers)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        self.running += 1
        try:
            try:
                async with asyncio.timeout(STOP_TIMEOUT_S):
                    await consumer.start()
                async with asyncio.timeout(STOP_TIMEOUT_S):
                    found = await partitions_of(self.bootstrap, self.topic)
                partitions = [TopicPartition(self.topic, p) for p in found]
                if not partitions:  # the metrics service creates the topic; until then nothing comes
                    raise errors.EVENTS_UNAVAILABLE
                consumer.assign(partitions)
                async with asyncio.timeout(STOP_TIMEOUT_S):
                    ends = await consumer.end_offsets(partitions)
            except Exception as exc:  # Kafka away: the client retries (UNAVAILABLE)
                raise errors.EVENTS_UNAVAILABLE from exc
            position = {tp.partition: ends[tp] for tp in partitions} if resumed is None else dict(resumed)
            for tp in partitions:
                consumer.seek(tp, position.get(tp.partition, 0))  # a partition added since: from its start
            seen: OrderedDict[str, None] = OrderedDict.fromkeys(recent)
            quiet_since = time.monotonic()
            while not self.in_flight.closing.is_set():
                try:
                    batches = await consumer.getmany(
                        timeout_ms=int(min(1.0, keepalive_s) * 1000), max_records=500
                    )
                except Exception as exc:
                    raise errors.EVENTS_UNAVAILABLE from exc
                for tp, records in sorted(batches.items(), key=lambda b: b[0].partition):
                    for record in records:
                        position[tp.partition] = record.offset + 1
                        alert = _decode(record.value)
                        if alert is None or alert.seller_account not in wanted:
                            continue
                        if marketplace_id and alert.marketplace_id != marketplace_id:
                            continue
                        digest = _digest(alert.alert_id)
                        if digest in seen:
                            continue
                        seen[digest] = None
                        if len(seen) > SEEN_IDS:
                            seen.popitem(last=False)
                        quiet_since = time.monotonic()
                        yield metrics_pb2.WatchAlertsResponse(
                            alert=api_alert(alert), resume_token=self._token(position, seen, query)
                        )
                if time.monotonic() - quiet_since >= keepalive_s:
                    quiet_since = time.monotonic()
                    now = Timestamp()
                    now.GetCurrentTime()
                    yield metrics_pb2.WatchAlertsResponse(
                        keepalive=metrics_pb2.Keepalive(sent_at=now),
                        resume_token=self._token(position, seen, query),
                    )
            raise errors.SHUTTING_DOWN
        finally:
            self.running -= 1
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await consumer.stop()

    def _resumed(self, resume_token: str, query: dict[str, str]) -> tuple[dict[int, int] | None, list[str]]:
        """The positions a token holds, and the digests of the latest alerts sent before it."""
        if not resume_token:
            return None, []
        held = self.tokens.decode(resume_token, query, field="resume_token")
        if datetime.now(UTC) - datetime.fromtimestamp(int(held["iat"]), UTC) > RETENTION:
            raise errors.failed_precondition(
                "RESUME_TOKEN_EXPIRED",
                f"the resume token is older than {RETENTION.days} days: start a new watch",
            )
        positions = {int(p): int(o) for p, _, o in (x.partition(":") for x in held["p"].split(",") if x)}
        return positions, held["ids"].split()

    def _token(self, position: dict[int, int], seen: OrderedDict[str, None], query: dict[str, str]) -> str:
        held = ",".join(f"{p}:{o}" for p, o in sorted(position.items()))
        recent = " ".join(list(seen)[-TOKEN_IDS:])
        return self.tokens.encode(query, {"p": held, "ids": recent, "iat": str(int(time.time()))})


def _digest(alert_id: str) -> str:
    return hashlib.sha256(alert_id.encode()).hexdigest()[:16]


def _decode(value: bytes | None) -> ev.Alert | None:
    alert = ev.Alert()
    try:
        alert.ParseFromString(value or b"")
    except DecodeError:
        return None  # not an alert: the topic is the metrics service's, nothing to tell the caller
    return alert
