"""What the simulator pushes, onto the raw topics, as Amazon's SQS bridge and the seller's helpdesk would.

Amazon delivers ORDER_CHANGE notifications to an SQS queue (or EventBridge) that a bridge puts on the
raw topic; buyer messages come from the seller's helpdesk. The simulator publishes both as its clock
passes (`GET /_sim/notifications?after=N`, `GET /_sim/buyer-messages?after=N`); `forward` moves what is
new onto `order-change.raw` and `buyer-messages.raw`, keyed by order, over HTTP, so it works with a
simulator in this process or in another (`cancelguard simulator`). Dev and tests only.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

import aiohttp
from aiokafka import AIOKafkaProducer

from cancelguard import kafka
from cancelguard.config import Settings


@dataclass
class Forwarded:
    notifications: int = 0
    messages: int = 0


class SimulatorBridge:
    def __init__(self, base_url: str, settings: Settings, producer: AIOKafkaProducer) -> None:
        self.base_url = base_url.rstrip("/")
        self.settings = settings
        self.producer = producer
        self._after = {"notifications": 0, "buyer-messages": 0}
        self.totals = Forwarded()

    async def forward(self, session: aiohttp.ClientSession) -> Forwarded:
        """Everything published since the last call, sent and acknowledged."""
        out = Forwarded()
        out.notifications = await self._forward(session, "notifications", self.settings.order_change_topic)
        out.messages = await self._forward(session, "buyer-messages", self.settings.buyer_messages_topic)
        self.totals.notifications += out.notifications
        self.totals.messages += out.messages
        return out

    async def _forward(self, session: aiohttp.ClientSession, log: str, topic: str) -> int:
        key_of = _notification_order if log == "notifications" else _message_order
        field = "notifications" if log == "notifications" else "messages"
        sent = 0
        while True:
            async with session.get(
                f"{self.base_url}/_sim/{log}", params={"after": str(self._after[log]), "limit": "1000"}
            ) as resp:
                resp.raise_for_status()
                page = await resp.json()
            entries = page[field]
            if not entries:
                return sent
            futures = [
                await self.producer.send(topic, json.dumps(e).encode(), key=key_of(e).encode())
                for e in entries
            ]
            async with asyncio.timeout(kafka.SEND_TIMEOUT_S):
                await asyncio.gather(*futures)
            self._after[log] = page["next"]
            sent += len(entries)


def _notification_order(doc: dict) -> str:
    return str(doc["Payload"]["OrderChangeNotification"]["AmazonOrderId"])


def _message_order(doc: dict) -> str:
    return str(doc["amazon_order_id"])
