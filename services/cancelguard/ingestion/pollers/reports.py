"""The reports poller: Amazon's report documents -> order events and Amazon's own cancellation rate.

Per account, when due:
- `GET_FLAT_FILE_ACTIONABLE_ORDER_DATA_SHIPPING` (the Unshipped Orders flat file), one report per
  marketplace (Amazon writes each in its marketplace's code page), every `unshipped_report_interval_s`:
  read by the same `OrderReportReader` as `cancelguard import-report`, with `as_of` = the report's
  createdTime (the file has no time of its own), streamed through a spooled temporary file so a large
  report never sits in memory whole. Bad rows become dead letters with the document and the line.
- `GET_V2_SELLER_PERFORMANCE_REPORT`, one report for all the account's marketplaces, every
  `performance_report_interval_s`: read by `parse_seller_performance` into one `AmazonReportedRate`
  event per marketplace, so metrics can keep Amazon's figure beside ours.

The cursor (`poll_cursors`, source = the report type) is the createdTime of the last report published
(or the time of a failed attempt, so a report Amazon keeps failing is asked for once an interval).
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import BinaryIO, cast

from cancelguard import dead_letters
from cancelguard.accounts import SellerAccount
from cancelguard.amazon import ProcessingFailed, SpApiClient
from cancelguard.amazon.operations import GET_REPORT_DOCUMENT
from cancelguard.amazon.reports import SELLER_PERFORMANCE_REPORT, UNSHIPPED_ORDERS_REPORT
from cancelguard.domain.model import InvalidInput, parse_time
from cancelguard.ingestion.adapters.order_report import BadRow, OrderReportReader, ReportKind, ReportOrder
from cancelguard.ingestion.adapters.seller_performance import parse_seller_performance
from cancelguard.ingestion.pollers.cursors import CursorStore
from cancelguard.ingestion.report_import import bad_row_letter
from cancelguard.ingestion.routing import Outgoing, Route, Sender, checked

log = logging.getLogger("cancelguard.pollers.reports")

STAGE = "pollers"
SPOOL_BYTES = 8 << 20  # a report up to this size stays in memory; a larger one goes to a temporary file
SEND_EVERY = 1000  # records sent (and acknowledged) at a time while a report is read
REPORT_TIMEOUT_S = 3600.0


@dataclass
class ReportResult:
    report_type: str
    marketplace_ids: tuple[str, ...]
    report_id: str = ""
    created_at: datetime | None = None
    documents: int = 0  # orders and bad rows of a flat file; 1 for the performance report
    events: int = 0
    dead_letters: int = 0
    error: str = ""


class ReportsPoller:
    def __init__(
        self,
        account: SellerAccount,
        client: SpApiClient,
        cursors: CursorStore,
        route: Route,
        sender: Sender,
        *,
        unshipped_every: timedelta,
        performance_every: timedelta,
        report_poll_interval_s: float,
        now: Callable[[], datetime],
    ) -> None:
        self.account = account
        self.client = client
        self.cursors = cursors
        self.route = route
        self.sender = sender
        self.every = {UNSHIPPED_ORDERS_REPORT: unshipped_every, SELLER_PERFORMANCE_REPORT: performance_every}
        self.report_poll_interval_s = report_poll_interval_s
        self.now = now

    async def due(self) -> list[tuple[str, tuple[str, ...]]]:
        """(report type, marketplaces) of the reports whose interval has passed."""
        out: list[tuple[str, tuple[str, ...]]] = []
        seller = self.account.seller_id
        unshipped = await self.cursors.load(seller, UNSHIPPED_ORDERS_REPORT)
        for m in self.account.marketplaces:
            if self._is_due(unshipped.get(m), UNSHIPPED_ORDERS_REPORT):
                out.append((UNSHIPPED_ORDERS_REPORT, (m,)))
        performance = await self.cursors.load(seller, SELLER_PERFORMANCE_REPORT)
        markets = self.account.marketplaces
        if any(self._is_due(performance.get(m), SELLER_PERFORMANCE_REPORT) for m in markets):
            out.append((SELLER_PERFORMANCE_REPORT, self.account.marketplaces))
        return out

    def _is_due(self, last: datetime | None, report_type: str) -> bool:
        return last is None or self.now() - last >= self.every[report_type]

    async def run_due(self, stop: asyncio.Event) -> list[ReportResult]:
        results = []
        for report_type, marketplaces in await self.due():
            if stop.is_set():
                break
            results.append(await self.fetch(report_type, marketplaces, stop))
        return results

    async def fetch(
        self, report_type: str, marketplaces: tuple[str, ...], stop: asyncio.Event
    ) -> ReportResult:
        """Create, wait for, read and publish one report; then its cursor. A report Amazon fails (FATAL,
        CANCELLED, too slow) is logged and asked for again after an interval."""
        result = ReportResult(report_type, marketplaces)
        reports = self.client.reports
        try:
            result.report_id = await reports.create_report(report_type, marketplaces)
            report = await reports.wait_for_report(
                result.report_id, poll_interval_s=self.report_poll_interval_s, timeout_s=REPORT_TIMEOUT_S
            )
        except (ProcessingFailed, TimeoutError) as exc:
            result.error = str(exc)
            log.warning(
                "a report did not finish; asking again after an interval",
                extra={"seller_account": self.account.seller_id, "report": report_type, "error": str(exc)},
            )
            await self.cursors.save(self.account.seller_id, marketplaces, report_type, self.now())
            return result
        result.created_at = parse_time(report["createdTime"], "createdTime")
        document = await reports.get_report_document(report["reportDocumentId"])
        if report_type == UNSHIPPED_ORDERS_REPORT:
            done = await self._unshipped(document, marketplaces[0], result, stop)
        else:
            done = await self._performance(document, result, stop)
        if done:
            await self.cursors.save(self.account.seller_id, marketplaces, report_type, result.created_at)
        return result

    async def _performance(self, document: dict, result: ReportResult, stop: asyncio.Event) -> bool:
        raw = await self.client.reports.download_document(document)
        assert result.created_at is not None
        created_at, now = result.created_at, self.now()
        outgoing = self.route.document(
            SELLER_PERFORMANCE_REPORT,
            lambda: parse_seller_performance(
                raw,
                seller_account=self.account.seller_id,
                report_id=result.report_id,
                reported_at=created_at,
                observed_at=now,
            ),
            now=now,
            original=lambda: raw,
            origin=dead_letters.ApiOrigin(
                GET_REPORT_DOCUMENT.key, "", f"document {document['reportDocumentId']} of {result.report_id}"
            ),
            key=self.account.seller_id.encode(),
        )
        result.documents = 1
        self._tally(outgoing, result)
        return await self.sender.send_all(outgoing, stop)

    async def _unshipped(
        self, document: dict, marketplace_id: str, result: ReportResult, stop: asyncio.Event
    ) -> bool:
        document_id = str(document["reportDocumentId"])
        name = f"{UNSHIPPED_ORDERS_REPORT} {document_id}"
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
            async for chunk in self.client.reports.stream_document(document):
                spool.write(chunk)
            spool.seek(0)
            now = self.now()
            try:
                reader = OrderReportReader(
                    cast(BinaryIO, spool),
                    seller_account=self.account.seller_id,
                    source_id=document_id,
                    observed_at=now,
                    marketplace_id=marketplace_id,
                    kind=ReportKind.UNSHIPPED,
                    as_of=result.created_at,
                )
            except InvalidInput as exc:  # no header to read: the whole document is one bad record
                letter, code = self.route.refused(
                    exc,
                    value=None,
                    key=self.account.seller_id.encode(),
                    origin=dead_letters.FileOrigin(name, 1),
                    personal_fields=(),
                )
                self.route.tally(UNSHIPPED_ORDERS_REPORT, "dead_lettered", reason=code)
                result.documents = 1
                self._tally([letter], result)
                return await self.sender.send_all([letter], stop)
            pending: list[Outgoing] = []
            for record in reader:
                result.documents += 1
                pending += self._report_record(record, name, now)
                if len(pending) >= SEND_EVERY:
                    self._tally(pending, result)
                    if not await self.sender.send_all(pending, stop):
                        return False
                    pending = []
            self._tally(pending, result)
            return await self.sender.send_all(pending, stop)

    def _report_record(self, record: ReportOrder | BadRow, name: str, now: datetime) -> list[Outgoing]:
        """A report's order -> its events; a bad row (or an order the bounds refuse) -> dead letters."""
        rows: Sequence[BadRow]
        if isinstance(record, ReportOrder):
            try:
                out = [self.route.event(checked(e, now)) for e in record.events]
            except InvalidInput as exc:  # the reader checked them: a bug of ours, still not a crash
                order_id = record.events[0].key.amazon_order_id
                rows = [BadRow(line, exc.reason, f"line {line}: {exc}", order_id) for line in record.lines]
            else:
                self.route.tally(UNSHIPPED_ORDERS_REPORT, "published", events=len(out))
                return out
        else:
            rows = [record]
        self.route.tally(UNSHIPPED_ORDERS_REPORT, "dead_lettered", reason=rows[0].reason)
        letters = []
        for row in rows:
            letter = bad_row_letter(row, name, STAGE)
            letters.append(Outgoing(self.route.dead_letter_topic, letter.key, letter.value, letter.headers))
        return letters

    def _tally(self, outgoing: Sequence[Outgoing], result: ReportResult) -> None:
        for o in outgoing:
            if o.topic == self.route.dead_letter_topic:
                result.dead_letters += 1
            else:
                result.events += 1
