"""Cancel feeds to Amazon, for decisions that ask for it (DecideCancellation `submit_feed`).

The decision records its feed (`records.PendingFeed`) in its own transaction; this submitter, a task of
the API process, takes due feeds under a lease and walks each through the Feeds API:

    PENDING --createFeedDocument, upload, createFeed--> SUBMITTED --getFeed DONE, the report--> DONE
                                                                  --getFeed CANCELLED/FATAL--> FAILED

Amazon refusing the feed (a 4xx other than 429) fails it with Amazon's words. Amazon being away (429
past the client's budget, 5xx, Login with Amazon down, a malformed answer) is a retry with backoff,
never a failure; the submission says so in `error` and `attempts` meanwhile.

A crash between createFeed and recording the feed id submits the feed again once the lease runs out:
Amazon then refuses the second cancel of the order in its processing report and the first stands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import asdict
from datetime import timedelta
from typing import Any

import aiohttp
from prometheus_client import Counter

from cancelguard.accounts import Accounts
from cancelguard.amazon import SpApiClient
from cancelguard.amazon.errors import AmazonError, SpApiError
from cancelguard.amazon.feed_xml import ProcessingReport
from cancelguard.api.records import FeedRow, Records

log = logging.getLogger("cancelguard.api.feeds")

LEASE = timedelta(minutes=5)  # longer than one step with the client's own retries
BACKOFF_S = (15, 30, 60, 120, 300, 600, 900)  # after the 1st, 2nd, ... failed call to Amazon
FINISHED_BADLY = ("CANCELLED", "FATAL")

FEEDS = Counter(
    "cancelguard_api_feed_steps_total",
    "Steps of cancel feeds submitted to Amazon, by outcome",
    ["outcome"],  # submitted, processing, done, failed, retried
)


def backoff(attempts: int) -> timedelta:
    """How long to wait after the `attempts`-th failed call in a row."""
    return timedelta(seconds=BACKOFF_S[min(max(attempts, 1), len(BACKOFF_S)) - 1])


def report_summary(report: ProcessingReport) -> dict[str, Any]:
    """What GetFeedSubmission shows of Amazon's processing report (JSON for the row)."""
    return {
        "messages_processed": report.messages_processed,
        "messages_successful": report.messages_successful,
        "messages_with_error": report.messages_with_error,
        "messages_with_warning": report.messages_with_warning,
        "results": [asdict(r) for r in report.results],
    }


class FeedSubmitter:
    def __init__(
        self,
        records: Records,
        accounts: Accounts,
        *,
        poll_s: float = 30.0,
        interval_s: float = 1.0,
        batch: int = 20,
        connection_options: dict[str, Any] | None = None,
    ) -> None:
        self.records = records
        self.accounts = accounts
        self.poll = timedelta(seconds=poll_s)  # between getFeed calls for one feed
        self.interval_s = interval_s  # between looks for due feeds
        self.batch = batch
        self.connection_options = connection_options or {}  # SellerConnection tuning (tests)
        self._session: aiohttp.ClientSession | None = None
        self._clients: dict[str, SpApiClient] = {}  # per accounts-file entry (seller and region)
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def configured(self, seller: str, marketplace_id: str) -> bool:
        return self.accounts.for_marketplace(seller, marketplace_id) is not None

    def _client(self, seller: str, marketplace_id: str) -> SpApiClient | None:
        account = self.accounts.for_marketplace(seller, marketplace_id)
        if account is None:
            return None
        key = f"{account.seller_id}|{account.region}"
        client = self._clients.get(key)
        if client is None:
            if self._session is None:
                self._session = aiohttp.ClientSession()
            client = self._clients[key] = SpApiClient(
                account.connection(**self.connection_options), session=self._session
            )
        return client

    # --- the loop ---

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="feed-submitter")

    async def stop(self, grace_s: float = 10.0) -> None:
        """Let the step in hand finish (a feed half submitted would be submitted again), then close."""
        self._stopping.set()
        if self._task is not None:
            try:
                async with asyncio.timeout(grace_s):
                    await asyncio.shield(self._task)
            except TimeoutError:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                if await self.run_once():
                    continue
            except Exception as exc:  # Postgres away: health says so; try again
                log.debug("feed submitter: %s", exc)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval_s):
                    await self._stopping.wait()

    async def run_once(self) -> int:
        """Take the due feeds and move each one step; returns how many there were."""
        rows = await self.records.claim_feeds(LEASE, self.batch)
        for row in rows:
            if self._stopping.is_set():
                break  # the rest stay leased: due again when the lease runs out
            await self.step(row)
        return len(rows)

    async def step(self, row: FeedRow) -> None:
        client = self._client(row.seller_account, row.marketplace_id)
        if client is None:
            await self._final(row, "FAILED", error="the seller account is no longer in the accounts file")
            return
        try:
            if row.state == "PENDING":
                feed_id = await client.feeds.submit_document(row.document, [row.marketplace_id])
                FEEDS.labels("submitted").inc()
                log.info("cancel feed submitted", extra={"event": row.event_id, "feed": feed_id})
                await self.records.update_feed(
                    row.event_id, state="SUBMITTED", again_in=self.poll, feed_id=feed_id
                )
                return
            assert row.feed_id is not None  # SUBMITTED rows have one
            feed = await client.feeds.get_feed(row.feed_id)
            status = str(feed["processingStatus"])
            if status == "DONE":
                report = await client.feeds.result(feed)
                await self._final(row, "DONE", processing_status=status, report=report_summary(report))
            elif status in FINISHED_BADLY:
                await self._final(row, "FAILED", processing_status=status, error=f"Amazon's feed is {status}")
            else:
                FEEDS.labels("processing").inc()
                await self.records.update_feed(
                    row.event_id, state="SUBMITTED", again_in=self.poll, processing_status=status
                )
        except SpApiError as exc:  # Amazon refused it: asking again would not change its mind
            await self._final(row, "FAILED", error=str(exc)[:1000])
        except (AmazonError, aiohttp.ClientError, TimeoutError) as exc:  # Amazon away: later
            FEEDS.labels("retried").inc()
            log.warning("cancel feed: Amazon did not answer; retrying later",
                        extra={"event": row.event_id, "error": str(exc)[:300]})  # fmt: skip
            await self.records.update_feed(
                row.event_id,
                state=row.state,
                again_in=backoff(row.attempts + 1),
                error=str(exc)[:1000],
                failed_call=True,
            )

    async def _final(self, row: FeedRow, state: str, **fields: Any) -> None:
        FEEDS.labels(state.lower()).inc()
        log.info("cancel feed " + state.lower(), extra={"event": row.event_id, "feed": row.feed_id})
        await self.records.update_feed(row.event_id, state=state, again_in=None, **fields)
