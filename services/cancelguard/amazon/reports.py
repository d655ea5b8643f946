"""Reports API 2021-06-30 (`models/reports-api-model/reports_2021-06-30.json`).

createReport -> getReport until `processingStatus` is DONE (or FATAL/CANCELLED) -> getReportDocument ->
download the presigned `url`, gunzipping when `compressionAlgorithm` is `GZIP`. Report types used:
the unshipped-orders and all-orders flat files and the seller performance report (JSON per
`schemas/reports/accountHealthReport-2020-11-18.json`). Parsing the files is not done here.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cancelguard.amazon.errors import MalformedResponse, ProcessingFailed
from cancelguard.amazon.operations import CREATE_REPORT, GET_REPORT, GET_REPORT_DOCUMENT
from cancelguard.amazon.shape import require

if TYPE_CHECKING:
    from cancelguard.amazon.client import SpApiClient

UNSHIPPED_ORDERS_REPORT = "GET_FLAT_FILE_ACTIONABLE_ORDER_DATA_SHIPPING"
ALL_ORDERS_BY_LAST_UPDATE_REPORT = "GET_FLAT_FILE_ALL_ORDERS_DATA_BY_LAST_UPDATE_GENERAL"
SELLER_PERFORMANCE_REPORT = "GET_V2_SELLER_PERFORMANCE_REPORT"

PROCESSING_STATUSES = ("CANCELLED", "DONE", "FATAL", "IN_PROGRESS", "IN_QUEUE")
FINISHED = ("CANCELLED", "DONE", "FATAL")


async def wait_until_done(
    client: SpApiClient,
    fetch: Callable[[], Awaitable[dict[str, Any]]],
    what: str,
    ident: str,
    document_field: str,
    *,
    poll_interval_s: float,
    timeout_s: float,
) -> dict[str, Any]:
    """Poll a report or feed until DONE; FATAL or CANCELLED raise ProcessingFailed (with the document
    that may say why), and a deadline raises TimeoutError."""
    clock = client.clock
    deadline = clock.monotonic() + timeout_s
    while True:
        doc = await fetch()
        status = doc["processingStatus"]
        if status == "DONE":
            return doc
        if status in FINISHED:
            raise ProcessingFailed(what, ident, status, doc.get(document_field))
        if clock.monotonic() + poll_interval_s > deadline:
            raise TimeoutError(f"{what} {ident} still {status} after {timeout_s:.0f}s")
        await clock.sleep(poll_interval_s)


def check_processing_status(operation: str, doc: dict[str, Any], path: str) -> str:
    status = require(operation, doc, path, "processingStatus", str)
    if status not in PROCESSING_STATUSES:
        raise MalformedResponse(operation, f"{path}.processingStatus", f"unknown status {status!r}")
    return str(status)


async def gunzip_stream(chunks: AsyncIterator[bytes], what: str) -> AsyncIterator[bytes]:
    """Decompress a gzip stream chunk by chunk (constant memory)."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        async for chunk in chunks:
            out = inflater.decompress(chunk)
            if out:
                yield out
        tail = inflater.flush()
    except zlib.error as exc:
        raise MalformedResponse(what, "$.url", f"document is not valid gzip: {exc}") from None
    if not inflater.eof:
        raise MalformedResponse(what, "$.url", "gzip document is truncated")
    if tail:
        yield tail


async def document_chunks(client: SpApiClient, document: dict[str, Any], what: str) -> AsyncIterator[bytes]:
    """The contents of a report or feed document (`{url, compressionAlgorithm?}`), decompressed."""
    url = require(what, document, "$", "url", str)
    compression = require(what, document, "$", "compressionAlgorithm", str, optional=True)
    if compression not in (None, "GZIP"):
        raise MalformedResponse(what, "$.compressionAlgorithm", f"unknown algorithm {compression!r}")
    chunks = client.stream(url, what=what)
    if compression == "GZIP":
        chunks = gunzip_stream(chunks, what)
    async for chunk in chunks:
        yield chunk


class Reports:
    def __init__(self, client: SpApiClient) -> None:
        self._client = client

    async def create_report(
        self,
        report_type: str,
        marketplace_ids: Sequence[str],
        *,
        data_start_time: datetime | None = None,
        data_end_time: datetime | None = None,
        report_options: dict[str, str] | None = None,
    ) -> str:
        from cancelguard.amazon.client import amazon_timestamp

        if not marketplace_ids:
            raise ValueError("marketplace_ids is required")
        spec: dict[str, Any] = {"reportType": report_type, "marketplaceIds": list(marketplace_ids)}
        if data_start_time is not None:
            spec["dataStartTime"] = amazon_timestamp(data_start_time)
        if data_end_time is not None:
            spec["dataEndTime"] = amazon_timestamp(data_end_time)
        if report_options:
            spec["reportOptions"] = dict(report_options)
        resp = await self._client.call(CREATE_REPORT, body=spec)
        return str(require(CREATE_REPORT.operation_id, resp.body, "$", "reportId", str))

    async def get_report(self, report_id: str) -> dict[str, Any]:
        resp = await self._client.call(GET_REPORT, path_params={"reportId": report_id})
        op = GET_REPORT.operation_id
        for field in ("reportId", "reportType", "createdTime"):
            require(op, resp.body, "$", field, str)
        check_processing_status(op, resp.body, "$")
        return resp.body

    async def wait_for_report(
        self, report_id: str, *, poll_interval_s: float = 30.0, timeout_s: float = 3600.0
    ) -> dict[str, Any]:
        """Poll getReport until DONE; FATAL or CANCELLED raise ProcessingFailed."""
        report = await wait_until_done(
            self._client,
            lambda: self.get_report(report_id),
            "report",
            report_id,
            "reportDocumentId",
            poll_interval_s=poll_interval_s,
            timeout_s=timeout_s,
        )
        require(GET_REPORT.operation_id, report, "$", "reportDocumentId", str)
        return report

    async def get_report_document(self, report_document_id: str) -> dict[str, Any]:
        resp = await self._client.call(
            GET_REPORT_DOCUMENT, path_params={"reportDocumentId": report_document_id}
        )
        op = GET_REPORT_DOCUMENT.operation_id
        require(op, resp.body, "$", "reportDocumentId", str)
        require(op, resp.body, "$", "url", str)
        return resp.body

    def stream_document(self, document: dict[str, Any]) -> AsyncIterator[bytes]:
        return document_chunks(self._client, document, "report document")

    async def download_document(self, document: dict[str, Any]) -> bytes:
        return b"".join([chunk async for chunk in self.stream_document(document)])

    async def fetch(
        self,
        report_type: str,
        marketplace_ids: Sequence[str],
        *,
        data_start_time: datetime | None = None,
        data_end_time: datetime | None = None,
        poll_interval_s: float = 30.0,
        timeout_s: float = 3600.0,
    ) -> bytes:
        """create, wait, get the document, download: the report's contents (decompressed)."""
        report_id = await self.create_report(
            report_type, marketplace_ids, data_start_time=data_start_time, data_end_time=data_end_time
        )
        report = await self.wait_for_report(report_id, poll_interval_s=poll_interval_s, timeout_s=timeout_s)
        document = await self.get_report_document(report["reportDocumentId"])
        return await self.download_document(document)
