"""The order as cancelguard knows it, and the events that change it.

Pure data and normalisers: no I/O. Amazon spells the same thing several ways across its sources
(`Canceled` in Orders API v0, `CANCELLED` in v2026-01-01; `MFN` vs `MERCHANT`; `"true"` vs `true` vs
`TRUE`); everything is normalised here, once, into the enums below.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from decimal import Decimal
from typing import Generic, NamedTuple, TypeVar

T = TypeVar("T")
D = TypeVar("D")


def assembler(cls: type[D]) -> Callable[..., D]:
    """`cls(*every_field)` for a frozen slots dataclass, positional, without its `__init__`: a frozen
    `__init__` sets each field through `object.__setattr__`, about twice the cost of the slots' own
    setters used here, and the decoder and the fold build several such values per event. It skips
    `__post_init__`: only for values already known to keep its checks (decoded times are UTC)."""
    n = len(fields(cls))  # type: ignore[arg-type]
    scope = {"new": object.__new__, "cls": cls}
    scope |= {f"s{i}": getattr(cls, f.name).__set__ for i, f in enumerate(fields(cls))}  # type: ignore[arg-type]
    args = ", ".join(f"v{i}" for i in range(n))
    sets = "".join(f"    s{i}(o, v{i})\n" for i in range(n))
    # unrolled, as dataclasses writes its own __init__
    exec(f"def build({args}):\n    o = new(cls)\n{sets}    return o\n", scope)
    return scope["build"]  # type: ignore[return-value]


class InvalidInput(ValueError):
    """Amazon (or a caller) sent a value we cannot read. The message says which and what was expected;
    `reason` is a stable code (`bounds.Reason`) for dead letters, metrics and API errors."""

    def __init__(self, message: str, reason: str = "UNKNOWN_VALUE") -> None:
        super().__init__(message)
        self.reason = reason


class Channel(enum.Enum):
    MFN = "MFN"  # fulfilled by the seller: the only orders in CR
    AFN = "AFN"  # fulfilled by Amazon (FBA)


class OrderStatus(enum.Enum):
    PENDING_AVAILABILITY = "PendingAvailability"
    PENDING = "Pending"
    UNSHIPPED = "Unshipped"
    PARTIALLY_SHIPPED = "PartiallyShipped"
    SHIPPED = "Shipped"
    INVOICE_UNCONFIRMED = "InvoiceUnconfirmed"
    CANCELED = "Canceled"
    UNFULFILLABLE = "Unfulfillable"

    @property
    def rank(self) -> int:
        """How far along the lifecycle: a status never moves to a lower rank."""
        return _STATUS_RANK[self]

    @property
    def is_pending(self) -> bool:
        return self in (OrderStatus.PENDING, OrderStatus.PENDING_AVAILABILITY)

    @property
    def is_shipped(self) -> bool:
        return self in (OrderStatus.PARTIALLY_SHIPPED, OrderStatus.SHIPPED, OrderStatus.INVOICE_UNCONFIRMED)


# Terminal statuses share the top rank; between them the later Amazon timestamp wins.
_STATUS_RANK = {
    OrderStatus.PENDING_AVAILABILITY: 0,
    OrderStatus.PENDING: 1,
    OrderStatus.UNSHIPPED: 2,
    OrderStatus.PARTIALLY_SHIPPED: 3,
    OrderStatus.SHIPPED: 4,
    OrderStatus.INVOICE_UNCONFIRMED: 4,
    OrderStatus.CANCELED: 4,
    OrderStatus.UNFULFILLABLE: 4,
}


class CancelledBy(enum.Enum):
    BUYER = "BUYER"
    MERCHANT = "MERCHANT"
    AMAZON = "AMAZON"
    UNKNOWN = "UNKNOWN"


class RequestKind(enum.Enum):
    FORMAL = "FORMAL"  # Your Orders > Request cancellation: visible to the API, excluded from CR
    INFORMAL = "INFORMAL"  # a buyer message: invisible to the API, counts if the seller cancels


class Source(enum.Enum):
    """Where an observation came from."""

    ORDERS_V0 = "ORDERS_V0"
    ORDERS_V2026 = "ORDERS_V2026"
    ORDER_CHANGE = "ORDER_CHANGE"
    ORDER_REPORT = "ORDER_REPORT"
    BUYER_MESSAGE = "BUYER_MESSAGE"
    SELLER = "SELLER"  # the seller's own systems: the cancel feeds they submit, the labels they buy
    SELLER_PERFORMANCE_REPORT = "SELLER_PERFORMANCE_REPORT"  # GET_V2_SELLER_PERFORMANCE_REPORT


class AttributionSource(enum.Enum):
    """How we know who cancelled: kept so the rule can be re-run and audited."""

    AMAZON_CANCELLED_BY = "AMAZON_CANCELLED_BY"  # Orders API v2026-01-01 cancellationExecution.cancelledBy
    SELLER_FEED = "SELLER_FEED"  # the seller's own cancel feed, reported to us
    STATUS_HISTORY = "STATUS_HISTORY"  # inferred from the statuses we saw (Pending -> Canceled, ...)
    NONE = "NONE"  # nothing says who: UNKNOWN, counted and flagged for review


# Orders API v0 `CancelReason` values (OrderAcknowledgement.xsd) the rules care about.
REASON_BUYER_CANCELED = "BuyerCanceled"
REASON_NO_INVENTORY = "NoInventory"

# The same reason as other sources spell it: Seller Central's "Buyer Cancelled", and v2026's free-text
# cancellationExecution.cancelReason ("Buyer requested cancellation" in Amazon's model example).
_BUYER_CANCELED_SPELLINGS = frozenset(
    {
        "buyercanceled",
        "buyercancelled",
        "buyerrequestedcancellation",
        "buyerrequestedcancel",
        "buyerrequestedcancelation",
    }
)


def is_buyer_canceled_reason(reason: str) -> bool:
    """Whether a cancel reason means BuyerCanceled, however the source spells it."""
    return re.sub(r"[^a-z]", "", reason.casefold()) in _BUYER_CANCELED_SPELLINGS


# --- normalisers ---------------------------------------------------------------------------------

_STATUS_SPELLINGS: dict[str, OrderStatus] = {}
for _s in OrderStatus:
    _STATUS_SPELLINGS[_s.value.casefold()] = _s
    _STATUS_SPELLINGS[_s.name.casefold()] = _s  # PENDING_AVAILABILITY, ...
    _STATUS_SPELLINGS[_s.name.replace("_", "").casefold()] = _s
_STATUS_SPELLINGS["cancelled"] = OrderStatus.CANCELED  # v2026 spelling


def parse_status(value: object) -> OrderStatus:
    """`Canceled`, `CANCELLED`, `PARTIALLY_SHIPPED`, `PartiallyShipped` ... -> OrderStatus."""
    if isinstance(value, OrderStatus):
        return value
    if isinstance(value, str):
        found = _STATUS_SPELLINGS.get(value.strip().casefold())
        if found is not None:
            return found
    raise InvalidInput(
        f"unknown order status {value!r}; expected one of Amazon's: "
        + ", ".join(s.value for s in OrderStatus)
        + " (v2026 spellings such as CANCELLED are accepted too)"
    )


_CHANNEL_SPELLINGS = {
    "mfn": Channel.MFN,
    "merchant": Channel.MFN,  # v2026 fulfilledBy, and reports' display value "Merchant"
    "seller": Channel.MFN,
    "afn": Channel.AFN,
    "amazon": Channel.AFN,
}


def parse_channel(value: object) -> Channel:
    """`MFN`/`MERCHANT`/`Merchant` -> MFN; `AFN`/`AMAZON`/`Amazon` -> AFN."""
    if isinstance(value, Channel):
        return value
    if isinstance(value, str):
        found = _CHANNEL_SPELLINGS.get(value.strip().casefold())
        if found is not None:
            return found
    raise InvalidInput(f"unknown fulfilment channel {value!r}; expected MFN/MERCHANT or AFN/AMAZON")


def parse_bool(value: object) -> bool:
    """Amazon's booleans: JSON `true`, the string `"true"` (v0), `TRUE` (report files)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        v = value.strip().casefold()
        if v in ("true", "1", "yes", "y"):
            return True
        if v in ("false", "0", "no", "n", ""):
            return False
    raise InvalidInput(f'expected a boolean (true/false, "true"/"false", TRUE/FALSE), got {value!r}')


def parse_cancelled_by(value: object) -> CancelledBy:
    """Amazon's cancelledBy (BUYER/MERCHANT/AMAZON). UNKNOWN is ours, for "no source says": no source
    may send it."""
    if isinstance(value, CancelledBy):
        return value
    if isinstance(value, str):
        found = _CANCELLED_BY_SPELLINGS.get(value.strip().upper())
        if found is not None:
            return found
    raise InvalidInput(f"unknown cancelledBy {value!r}; expected BUYER, MERCHANT or AMAZON")


_CANCELLED_BY_SPELLINGS = {b.value: b for b in CancelledBy if b is not CancelledBy.UNKNOWN}


def parse_time(value: object, field_name: str = "time") -> datetime:
    """Amazon's ISO 8601 times (`2022-11-29T19:42:04.284Z`, `2020-11-12T00:00Z`) -> an aware UTC datetime."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise InvalidInput(f"{field_name}: {value!r} is not an ISO 8601 time", "BAD_TIME") from None
    else:
        raise InvalidInput(f"{field_name}: expected an ISO 8601 time, got {value!r}", "BAD_TIME")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise InvalidInput(
            f"{field_name}: {value!r} has no time zone (Amazon sends UTC, e.g. ...Z)", "BAD_TIME"
        )
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # year 1 with a positive offset, year 9999 with a negative one
        raise InvalidInput(f"{field_name}: {value!r} is out of range", "TIME_OUT_OF_RANGE") from None


def _require_tz(name: str, ts: datetime | None) -> None:
    # `tzinfo is UTC` first: every decoded time is UTC, and this runs for every time of every event
    if ts is not None and ts.tzinfo is not UTC and (ts.tzinfo is None or ts.utcoffset() is None):
        raise InvalidInput(f"{name} {ts.isoformat()} has no time zone; Amazon's times are UTC", "BAD_TIME")


# --- identity ------------------------------------------------------------------------------------


def partition_key(seller_account: str, marketplace_id: str) -> str:
    """Kafka key: one partition owns every window of a seller account x marketplace."""
    return f"{seller_account}|{marketplace_id}"


@dataclass(frozen=True, slots=True, order=True)
class AccountKey:
    """A seller account x marketplace: the scope of a Cancellation Rate."""

    seller_account: str
    marketplace_id: str

    @property
    def partition_key(self) -> str:
        return partition_key(self.seller_account, self.marketplace_id)


@dataclass(frozen=True, slots=True, order=True)
class OrderKey:
    seller_account: str
    marketplace_id: str
    amazon_order_id: str

    @property
    def account(self) -> AccountKey:
        return AccountKey(self.seller_account, self.marketplace_id)

    @property
    def partition_key(self) -> str:
        return partition_key(self.seller_account, self.marketplace_id)  # no AccountKey built per event


# --- events: what a source said, normalised --------------------------------------------------------


class Stamp(NamedTuple):
    """Amazon's time for an observation, and the event id as a deterministic tie-break (they compare
    in that order). A named tuple, not a dataclass: the fold compares stamps several times per event,
    and a tuple compares in C (a dataclass's `__gt__` is a Python call building two tuples)."""

    at: datetime
    event_id: str


@dataclass(frozen=True, slots=True)
class ItemObservation:
    order_item_id: str
    seller_sku: str = ""
    quantity_ordered: int | None = None
    quantity_shipped: int | None = None
    buyer_requested_cancel: bool | None = None  # None: this source does not say
    buyer_cancel_reason: str = ""
    cancelled_by: CancelledBy | None = None  # v2026 cancellationExecution
    cancel_reason: str = ""


@dataclass(frozen=True, slots=True)
class OrderSnapshot:
    """What one source said about the whole order at Amazon's time `stamp.at`."""

    status: OrderStatus | None = None
    channel: Channel | None = None
    purchased_at: datetime | None = None
    latest_ship_at: datetime | None = None
    items: tuple[ItemObservation, ...] = ()

    def __post_init__(self) -> None:
        _require_tz("purchased_at", self.purchased_at)
        _require_tz("latest_ship_at", self.latest_ship_at)


@dataclass(frozen=True, slots=True)
class CancellationRequested:
    """A buyer asked to cancel. FORMAL from Amazon's flag; INFORMAL from a buyer message."""

    kind: RequestKind
    order_item_ids: tuple[str, ...] = ()  # empty: the whole order
    reason: str = ""
    language: str = ""  # informal requests: the language the buyer wrote in
    message_id: str = ""


@dataclass(frozen=True, slots=True)
class SellerCancellationSubmitted:
    """The seller's systems submitted a cancel feed (POST_ORDER_ACKNOWLEDGEMENT_DATA)."""

    cancel_reason: str
    order_item_ids: tuple[str, ...] = ()  # empty: the whole order
    feed_id: str = ""


@dataclass(frozen=True, slots=True)
class ShippingLabelPurchased:
    """A label was bought: the order can no longer be cancelled, only returned."""


EventBody = OrderSnapshot | CancellationRequested | SellerCancellationSubmitted | ShippingLabelPurchased


@dataclass(frozen=True, slots=True)
class OrderEvent:
    event_id: str  # deterministic from the source document: a duplicate carries the same id
    key: OrderKey
    source: Source
    occurred_at: datetime  # Amazon's own time for the change (LastUpdateDate, TimeOfOrderChange, ...)
    observed_at: datetime  # when cancelguard saw it
    body: EventBody

    def __post_init__(self) -> None:
        # naive times cannot be ordered against aware ones: refuse them here, at the adapter, not mid-fold
        _require_tz("occurred_at", self.occurred_at)
        _require_tz("observed_at", self.observed_at)

    @property
    def stamp(self) -> Stamp:
        return Stamp(self.occurred_at, self.event_id)


# --- account events: what a source said about a seller account x marketplace, not about one order ---


class AmazonRateStatus(enum.Enum):
    """The account health report's `status` of a metric."""

    GOOD = "GOOD"
    BAD = "BAD"
    NONE = "NONE"


class TargetCondition(enum.Enum):
    """How the account health report compares a metric's rate with its target value."""

    LESS_THAN = "LESS_THAN"
    GREATER_THAN = "GREATER_THAN"
    EQUALS = "EQUALS"


@dataclass(frozen=True, slots=True)
class AmazonReportedRate:
    """Amazon's own pre-fulfilment cancellation rate for one window (GET_V2_SELLER_PERFORMANCE_REPORT,
    `preFulfillmentCancellationRate`): kept beside ours to reconcile against. Rates are exact decimals
    as Amazon wrote them (0.005 is 0.5%)."""

    window_from: datetime  # reportingDateFrom, e.g. 2020-11-12T00:00Z
    window_to: datetime  # reportingDateTo: the window's last minute as Amazon writes it (23:59Z)
    order_count: int
    cancellation_count: int  # "seller faulted cancelled orders"
    rate: Decimal
    status: AmazonRateStatus
    target_value: Decimal
    target_condition: TargetCondition

    def __post_init__(self) -> None:
        _require_tz("window_from", self.window_from)
        _require_tz("window_to", self.window_to)


AccountEventBody = AmazonReportedRate


@dataclass(frozen=True, slots=True)
class AccountEvent:
    """An event about a seller account x marketplace (no order): it shares the order-events topic and its
    partition key with the orders it concerns, and the order fold never sees it (there is no order to
    invent for it)."""

    event_id: str
    key: AccountKey
    source: Source
    occurred_at: datetime  # Amazon's time: when it produced the report
    observed_at: datetime
    body: AccountEventBody

    def __post_init__(self) -> None:
        _require_tz("occurred_at", self.occurred_at)
        _require_tz("observed_at", self.observed_at)


# What travels on the order-events topic.
Event = OrderEvent | AccountEvent


# --- state: everything we know about an order, merged from all events ----------------------------
#
# Every field is a join: a minimum, a maximum, a union, or a last-writer-wins register ordered by Amazon's
# own time (ties broken by event id). So folding the same events in any order, with duplicates, gives the
# same state (see lifecycle.apply).


@dataclass(frozen=True, slots=True)
class Stamped(Generic[T]):
    """A last-writer-wins register: the value and the observation that set it."""

    value: T
    stamp: Stamp


@dataclass(frozen=True, slots=True)
class FormalRequest:
    flag: Stamped[bool]  # Amazon's latest word on the request flag
    first_requested_at: datetime | None  # earliest time the flag was seen up; kept if it later clears
    reason: Stamped[str] | None  # the buyer's reason, from the latest source that gives one
    sources: frozenset[Source]  # where we saw it

    @property
    def is_open(self) -> bool:
        return self.flag.value

    @property
    def ever_requested(self) -> bool:
        return self.first_requested_at is not None


@dataclass(frozen=True, slots=True)
class ItemCancellation:
    cancelled_by: CancelledBy
    reason: str
    stamp: Stamp
    source: AttributionSource


@dataclass(frozen=True, slots=True)
class Item:
    order_item_id: str
    seller_sku: Stamped[str] | None = None
    quantity_ordered: int | None = None
    quantity_shipped: int = 0
    formal_request: FormalRequest | None = None
    cancellation: ItemCancellation | None = None

    @property
    def sku(self) -> str:
        return self.seller_sku.value if self.seller_sku else ""

    @property
    def has_formal_request(self) -> bool:
        return self.formal_request is not None and self.formal_request.ever_requested


@dataclass(frozen=True, slots=True, order=True)
class InformalRequest:
    requested_at: datetime
    message_id: str
    language: str = ""
    order_item_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, order=True)
class SellerCancel:
    submitted_at: datetime
    reason: str
    order_item_ids: tuple[str, ...] = ()  # empty: the whole order
    feed_id: str = ""


@dataclass(frozen=True, slots=True)
class Order:
    key: OrderKey
    channel_obs: Stamped[Channel] | None = None
    status_obs: Stamped[OrderStatus] | None = None
    ship_by_obs: Stamped[datetime] | None = None
    purchased_at: datetime | None = None
    # earliest Amazon times we saw it Pending, past Pending (Unshipped or later, not cancelled), Canceled:
    # they tell a buyer self-cancel while Pending from a cancel of an Unshipped order
    seen_pending_at: datetime | None = None
    left_pending_at: datetime | None = None
    canceled_at: datetime | None = None
    label_purchased_at: datetime | None = None
    order_formal_request: FormalRequest | None = None  # a formal request not tied to one item
    items: Mapping[str, Item] = field(default_factory=dict)
    informal_requests: tuple[InformalRequest, ...] = ()
    seller_cancels: tuple[SellerCancel, ...] = ()

    # --- read-only views ---

    @property
    def channel(self) -> Channel | None:
        return self.channel_obs.value if self.channel_obs else None

    @property
    def status(self) -> OrderStatus | None:
        return self.status_obs.value if self.status_obs else None

    @property
    def latest_ship_at(self) -> datetime | None:
        return self.ship_by_obs.value if self.ship_by_obs else None

    @property
    def is_canceled(self) -> bool:
        return self.status is OrderStatus.CANCELED

    @property
    def is_pending(self) -> bool:
        return self.status is not None and self.status.is_pending

    def formal_requests(self) -> list[FormalRequest]:
        found = [i.formal_request for i in self.items.values() if i.formal_request is not None]
        if self.order_formal_request is not None:
            found.append(self.order_formal_request)
        return found

    @property
    def has_formal_request(self) -> bool:
        """A formal request was seen at some point (the flag may have cleared since)."""
        return any(r.ever_requested for r in self.formal_requests())

    def had_formal_request_at(self, ts: datetime | None) -> bool:
        """A formal request stood at `ts` (a cancel's time): raised at some point and not cleared before
        `ts`. When it was raised does not matter: a buyer cannot ask to cancel an order that is already
        cancelled, so a flag first seen on a cancelled order was raised before the cancel. A flag that went
        down after `ts` (Amazon's data for the cancelled order) still stood at `ts`."""
        return any(
            r.ever_requested and (r.is_open or ts is None or r.flag.stamp.at >= ts)
            for r in self.formal_requests()
        )

    @property
    def has_open_formal_request(self) -> bool:
        return any(r.is_open for r in self.formal_requests())

    @property
    def first_formal_request_at(self) -> datetime | None:
        times = [r.first_requested_at for r in self.formal_requests() if r.first_requested_at is not None]
        return min(times) if times else None

    @property
    def buyer_cancel_reason(self) -> str:
        reasons = [r.reason for r in self.formal_requests() if r.reason is not None]
        return max(reasons, key=lambda r: (r.stamp.at, r.stamp.event_id)).value if reasons else ""

    @property
    def has_informal_request(self) -> bool:
        return bool(self.informal_requests)

    @property
    def is_shipped(self) -> bool:
        status = self.status
        return (status is not None and status.is_shipped) or any(
            i.quantity_shipped > 0 for i in self.items.values()
        )

    @property
    def is_partially_shipped(self) -> bool:
        """Some items shipped, others not (Amazon's PartiallyShipped, or what the items say)."""
        if self.status is OrderStatus.PARTIALLY_SHIPPED:
            return True
        if self.status in (OrderStatus.SHIPPED, OrderStatus.INVOICE_UNCONFIRMED, OrderStatus.CANCELED):
            return False
        shipped = [i.quantity_shipped > 0 for i in self.items.values()]
        return any(shipped) and not all(shipped)

    @property
    def has_label(self) -> bool:
        return self.label_purchased_at is not None

    @property
    def cancelled_items(self) -> tuple[Item, ...]:
        return tuple(i for i in self.items.values() if i.cancellation is not None)


# Positional constructors of the state's hot types without the frozen __init__ (see `assembler`; a Stamp,
# a named tuple, is its own): the fold and the state codec build them for every event and stored order.
build_stamp = Stamp
build_stamped = assembler(Stamped)
build_item = assembler(Item)
build_order = assembler(Order)
