"""Feeds API 2021-06-30 (`models/feeds-api-model/feeds_2021-06-30.json`).

createFeedDocument (returns a presigned upload `url`) -> PUT the document there with the same content
type -> createFeed (`feedType`, `marketplaceIds`, `inputFeedDocumentId`) -> getFeed until DONE ->
getFeedDocument(`resultFeedDocumentId`) -> download the processing report.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import aiohttp

from cancelguard.amazon.errors import SpApiError, SpApiUnavailable
from cancelguard.amazon.feed_xml import (
    FEED_CONTENT_TYPE,
    ORDER_ACKNOWLEDGEMENT_FEED,
    OrderCancel,
    ProcessingReport,
    build_cancel_feed,
    parse_processing_report,
)
from cancelguard.amazon.operations import CREATE_FEED, CREATE_FEED_DOCUMENT, GET_FEED, GET_FEED_DOCUMENT
from cancelguard.amazon.reports import check_processing_status, document_chunks, wait_until_done
from cancelguard.amazon.shape import require

if TYPE_CHECKING:
    from cancelguard.amazon.client import SpApiClient


class Feeds:
    def __init__(self, client: SpApiClient) -> None:
        self._client = client

    async def create_feed_document(self, content_type: str) -> dict[str, Any]:
        resp = await self._client.call(CREATE_FEED_DOCUMENT, body={"contentType": content_type})
        op = CREATE_FEED_DOCUMENT.operation_id
        require(op, resp.body, "$", "feedDocumentId", str)
        require(op, resp.body, "$", "url", str)
        return resp.body

    async def upload_feed_document(self, url: str, content: bytes, content_type: str) -> None:
        """PUT the contents to the presigned URL (retried on 5xx and connection errors)."""
        client = self._client
        conn = client.connection
        last_error = ""
        for failure in range(1, conn.backoff.max_attempts + 1):
            session = await client.session()
            try:
                async with session.put(
                    url,
                    data=content,
                    headers={"Content-Type": content_type},
                    timeout=aiohttp.ClientTimeout(total=conn.request_timeout_s),
                ) as resp:
                    if 200 <= resp.status < 300:
                        return
                    text = (await resp.read())[:200].decode(errors="replace")
                    if resp.status < 500 and resp.status != 429:
                        raise SpApiError("uploadFeedDocument", resp.status, "UploadRefused", text)
                    last_error = f"HTTP {resp.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            if failure < conn.backoff.max_attempts:
                await client.clock.sleep(conn.backoff.delay(failure, client.rng))
        raise SpApiUnavailable("uploadFeedDocument", conn.backoff.max_attempts, last_error)

    async def create_feed(
        self,
        feed_type: str,
        marketplace_ids: Sequence[str],
        input_feed_document_id: str,
        *,
        feed_options: dict[str, str] | None = None,
    ) -> str:
        body: dict[str, Any] = {
            "feedType": feed_type,
            "marketplaceIds": list(marketplace_ids),
            "inputFeedDocumentId": input_feed_document_id,
        }
        if feed_options:
            body["feedOptions"] = dict(feed_options)
        resp = await self._client.call(CREATE_FEED, body=body)
        return str(require(CREATE_FEED.operation_id, resp.body, "$", "feedId", str))

    async def get_feed(self, feed_id: str) -> dict[str, Any]:
        resp = await self._client.call(GET_FEED, path_params={"feedId": feed_id})
        op = GET_FEED.operation_id
        for field in ("feedId", "feedType", "createdTime"):
            require(op, resp.body, "$", field, str)
        check_processing_status(op, resp.body, "$")
        return resp.body

    async def wait_for_feed(
        self, feed_id: str, *, poll_interval_s: float = 30.0, timeout_s: float = 3600.0
    ) -> dict[str, Any]:
        return await wait_until_done(
            self._client,
            lambda: self.get_feed(feed_id),
            "feed",
            feed_id,
            "resultFeedDocumentId",
            poll_interval_s=poll_interval_s,
            timeout_s=timeout_s,
        )

    async def get_feed_document(self, feed_document_id: str) -> dict[str, Any]:
        resp = await self._client.call(GET_FEED_DOCUMENT, path_params={"feedDocumentId": feed_document_id})
        op = GET_FEED_DOCUMENT.operation_id
        require(op, resp.body, "$", "feedDocumentId", str)
        require(op, resp.body, "$", "url", str)
        return resp.body

    async def download_document(self, document: dict[str, Any]) -> bytes:
        return b"".join([c async for c in document_chunks(self._client, document, "feed document")])

    async def submit_cancellations(
        self, cancels: Sequence[OrderCancel], marketplace_ids: Sequence[str]
    ) -> str:
        """Build, upload and submit a POST_ORDER_ACKNOWLEDGEMENT_DATA feed; returns the feed id."""
        document = build_cancel_feed(self._client.connection.seller_id, cancels)
        return await self.submit_document(document, marketplace_ids)

    async def submit_document(self, document: bytes, marketplace_ids: Sequence[str]) -> str:
        """Upload and submit a POST_ORDER_ACKNOWLEDGEMENT_DATA document built already; returns the feed id."""
        created = await self.create_feed_document(FEED_CONTENT_TYPE)
        await self.upload_feed_document(created["url"], document, FEED_CONTENT_TYPE)
        return await self.create_feed(ORDER_ACKNOWLEDGEMENT_FEED, marketplace_ids, created["feedDocumentId"])

    async def result(self, feed: dict[str, Any]) -> ProcessingReport:
        """The processing report of a feed getFeed says is DONE."""
        doc_id = require(GET_FEED.operation_id, feed, "$", "resultFeedDocumentId", str)
        document = await self.get_feed_document(doc_id)
        return parse_processing_report(await self.download_document(document))

    async def processing_report(
        self, feed_id: str, *, poll_interval_s: float = 30.0, timeout_s: float = 3600.0
    ) -> ProcessingReport:
        """Wait for the feed, download and parse its result document."""
        feed = await self.wait_for_feed(feed_id, poll_interval_s=poll_interval_s, timeout_s=timeout_s)
        return await self.result(feed)
