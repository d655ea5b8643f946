"""Seller accounts: configured in a file, never discovered.

`CANCELGUARD_ACCOUNTS_FILE` names a JSON file (JSON is YAML too, so a ConfigMap may hold it as is):

    {
      "defaults": {
        "client_id": "env:CANCELGUARD_LWA_CLIENT_ID",
        "client_secret": "file:/var/run/secrets/cancelguard/lwa/client-secret"
      },
      "accounts": [
        {
          "seller_id": "A3TH9S8BH6GOGM",
          "region": "eu",
          "marketplaces": ["A1PA6795UKMFR9", "A1F83G8C2ARO7P"],
          "orders_api": "v2026",
          "refresh_token": "file:/var/run/secrets/cancelguard/sellers/A3TH9S8BH6GOGM"
        }
      ]
    }

Per account: `seller_id`, `region` (`na`, `eu`, `fe`: the SP-API endpoint), `marketplaces` (Amazon's
ids, all in that region), `orders_api` (`v0` or `v2026`: which Orders API the poller reads), the Login
with Amazon `client_id`, `client_secret` and `refresh_token`, and optionally `endpoint` and
`lwa_endpoint` (another SP-API or token URL: the simulator). `defaults` holds fields shared by every
account (the app's LWA client, usually), which an account may override. A seller that sells in two
regions authorises the app once per region: it is listed once per region, each entry with that
region's marketplaces and refresh token.

Credentials are always references, never values: `env:NAME` (an environment variable) or
`file:/path` (a file, as a Kubernetes Secret mounts it; one trailing newline is dropped). A value
written into the file itself is refused, because the file sits in a ConfigMap in clear. Resolved
credentials live in `amazon.Secret`s, which never show in reprs, logs or errors; no error message
quotes a credential field's content.

Bad configuration fails at start with every problem found, each naming the field and the fix.
"""

from __future__ import annotations

import enum
import json
import os
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cancelguard.amazon import LWA_TOKEN_ENDPOINT, REGION_ENDPOINTS, LwaCredentials, Secret, SellerConnection
from cancelguard.amazon.operations import MARKETPLACE_REGIONS
from cancelguard.domain import bounds
from cancelguard.domain.model import InvalidInput
from cancelguard.domain.policy import MARKETPLACES


class OrdersApi(enum.Enum):
    V0 = "v0"  # getOrders + getOrderItems (Amazon deprecates its reads for 2027-03-27)
    V2026 = "v2026"  # searchOrders with includedData CANCELLATION, FULFILLMENT: says who cancelled


class AccountsError(ValueError):
    """The accounts file cannot be used; the message lists every problem with its field and fix."""


@dataclass(frozen=True, slots=True)
class SellerAccount:
    seller_id: str
    region: str
    marketplaces: tuple[str, ...]
    orders_api: OrdersApi
    credentials: LwaCredentials
    endpoint: str
    lwa_endpoint: str

    def connection(self, **options: Any) -> SellerConnection:
        """How the SP-API client reaches this account (`options`: SellerConnection's tuning fields)."""
        return SellerConnection(
            self.seller_id, self.endpoint, self.credentials, lwa_endpoint=self.lwa_endpoint, **options
        )


@dataclass(frozen=True, slots=True)
class Accounts:
    source: str  # where they were read from, for messages
    accounts: tuple[SellerAccount, ...]

    def for_marketplace(self, seller_id: str, marketplace_id: str) -> SellerAccount | None:
        """The account entry that polls this seller's marketplace (None: not configured)."""
        return next(
            (a for a in self.accounts if a.seller_id == seller_id and marketplace_id in a.marketplaces), None
        )

    def shard(self, index: int, count: int) -> Accounts:
        """The accounts shard `index` of `count` polls: each account belongs to exactly one shard."""
        if count < 1 or not 0 <= index < count:
            raise AccountsError(
                f"poller shard {index} of {count} does not exist: set CANCELGUARD_POLLER_SHARDS to the "
                "number of poller processes and CANCELGUARD_POLLER_SHARD to 0..SHARDS-1"
            )
        mine = tuple(a for a in self.accounts if shard_of(a.seller_id, count) == index)
        return replace(self, accounts=mine)


def shard_of(seller_id: str, shards: int) -> int:
    """A stable shard for a seller (the same in every process and release: CRC-32, not hash())."""
    return zlib.crc32(seller_id.encode()) % shards


ACCOUNT_FIELDS = (
    "seller_id",
    "region",
    "marketplaces",
    "orders_api",
    "client_id",
    "client_secret",
    "refresh_token",
    "endpoint",
    "lwa_endpoint",
)
CREDENTIAL_FIELDS = ("client_id", "client_secret", "refresh_token")
_REQUIRED = ("seller_id", "region", "marketplaces", "orders_api", *CREDENTIAL_FIELDS)
_NOT_SHARED = ("seller_id", "marketplaces")  # what `defaults` may not hold


def load_accounts(path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None) -> Accounts:
    """Read and check the accounts file; AccountsError lists every problem."""
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise AccountsError(
            f"accounts file {where}: cannot read it ({exc.strerror or exc}); set CANCELGUARD_ACCOUNTS_FILE "
            "to the path of the seller accounts file"
        ) from None
    except UnicodeDecodeError:
        raise AccountsError(f"accounts file {where}: not UTF-8 text; save it as UTF-8 JSON") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AccountsError(
            f"accounts file {where}: not JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); fix "
            "the syntax"
        ) from None
    return parse_accounts(doc, source=where, environ=os.environ if environ is None else environ)


def parse_accounts(doc: Any, *, source: str, environ: Mapping[str, str]) -> Accounts:
    problems: list[str] = []
    if not isinstance(doc, dict):
        raise AccountsError(f'accounts file {source}: must be a JSON object with an "accounts" list')
    for key in doc:
        if key not in ("defaults", "accounts"):
            problems.append(f'{key}: unknown field; the file holds only "defaults" and "accounts"')
    defaults = doc.get("defaults", {})
    if not isinstance(defaults, dict):
        problems.append("defaults: must be an object of fields shared by every account")
        defaults = {}
    for key in defaults:
        if key in _NOT_SHARED:
            problems.append(f"defaults.{key}: belongs to each account, not to defaults")
        elif key not in ACCOUNT_FIELDS:
            problems.append(f"defaults.{key}: unknown field; known: {', '.join(ACCOUNT_FIELDS)}")
    entries = doc.get("accounts")
    if not isinstance(entries, list) or not entries:
        problems.append("accounts: must be a non-empty list of seller accounts")
        entries = []
    accounts: list[SellerAccount] = []
    seen: dict[tuple[str, str], int] = {}  # (seller, region) -> entry
    markets_seen: dict[tuple[str, str], int] = {}  # (seller, marketplace) -> entry
    for n, entry in enumerate(entries):
        at = f"accounts[{n}]"
        if not isinstance(entry, dict):
            problems.append(f"{at}: must be an object")
            continue
        unknown = [k for k in entry if k not in ACCOUNT_FIELDS]
        problems += [f"{at}.{k}: unknown field; known: {', '.join(ACCOUNT_FIELDS)}" for k in unknown]
        fields = {**{k: v for k, v in defaults.items() if k not in _NOT_SHARED}, **entry}
        account = _account(fields, at, environ, problems)
        if account is None:
            continue
        key = (account.seller_id, account.region)
        if key in seen:
            problems.append(
                f"{at}: seller {account.seller_id} in region {account.region} is also accounts[{seen[key]}]; "
                "list each seller once per region, with all its marketplaces of that region"
            )
            continue
        twice = [m for m in account.marketplaces if (account.seller_id, m) in markets_seen]
        if twice:
            problems.append(f"{at}.marketplaces: {', '.join(twice)} already listed for {account.seller_id}")
            continue
        seen[key] = n
        markets_seen.update({(account.seller_id, m): n for m in account.marketplaces})
        accounts.append(account)
    if problems:
        listed = "\n".join(f"  {p}" for p in problems)
        raise AccountsError(f"accounts file {source} has {len(problems)} problem(s):\n{listed}")
    return Accounts(source, tuple(accounts))


def _account(
    fields: dict[str, Any], at: str, environ: Mapping[str, str], problems: list[str]
) -> SellerAccount | None:
    before = len(problems)
    for name in _REQUIRED:
        if name not in fields:
            problems.append(f"{at}.{name}: missing; {_HOW[name]}")
    seller_id = fields.get("seller_id")
    if "seller_id" in fields:
        try:
            bounds.identifier(seller_id, "seller_id")
        except InvalidInput:
            problems.append(f"{at}.seller_id: not a seller id; {_HOW['seller_id']}")
    region = fields.get("region")
    if "region" in fields and region not in REGION_ENDPOINTS:
        problems.append(f"{at}.region: {bounds.shown(region)} is not a region; {_HOW['region']}")
        region = None
    marketplaces: tuple[str, ...] = ()
    if "marketplaces" in fields:
        marketplaces = _marketplaces(fields["marketplaces"], region, at, problems)
    api = fields.get("orders_api")
    if "orders_api" in fields and api not in {a.value for a in OrdersApi}:
        problems.append(f"{at}.orders_api: {bounds.shown(api)} is not an Orders API; {_HOW['orders_api']}")
    secrets = {
        name: _resolve(fields[name], f"{at}.{name}", environ, problems)
        for name in CREDENTIAL_FIELDS
        if name in fields
    }
    urls = {}
    for name in ("endpoint", "lwa_endpoint"):
        value = fields.get(name)
        if value is not None and not (isinstance(value, str) and value.startswith(("https://", "http://"))):
            problems.append(f"{at}.{name}: must be an http(s) URL, e.g. {_EXAMPLE_URL[name]}")
        urls[name] = value
    if len(problems) > before:
        return None
    assert isinstance(seller_id, str) and isinstance(region, str) and isinstance(api, str)
    return SellerAccount(
        seller_id=seller_id,
        region=region,
        marketplaces=marketplaces,
        orders_api=OrdersApi(api),
        credentials=LwaCredentials(
            secrets["client_id"].reveal(), secrets["client_secret"], secrets["refresh_token"]
        ),
        endpoint=urls["endpoint"] or REGION_ENDPOINTS[region],
        lwa_endpoint=urls["lwa_endpoint"] or LWA_TOKEN_ENDPOINT,
    )


def _marketplaces(value: Any, region: str | None, at: str, problems: list[str]) -> tuple[str, ...]:
    where = f"{at}.marketplaces"
    if not isinstance(value, list) or not value or not all(isinstance(m, str) for m in value):
        problems.append(f'{where}: must be a non-empty list of marketplace ids, e.g. ["ATVPDKIKX0DER"]')
        return ()
    for m in value:
        if m not in MARKETPLACES:
            problems.append(f"{where}: {bounds.shown(m)} is not an Amazon marketplace id, e.g. ATVPDKIKX0DER")
        elif region is not None and MARKETPLACE_REGIONS[m] != region:
            problems.append(
                f"{where}: {m} ({MARKETPLACES[m].country}) is served by region {MARKETPLACE_REGIONS[m]}, not "
                f"{region}; list it under a {MARKETPLACE_REGIONS[m]} account"
            )
    if len(set(value)) != len(value):
        problems.append(f"{where}: lists a marketplace twice")
    return tuple(value)


def _resolve(ref: Any, where: str, environ: Mapping[str, str], problems: list[str]) -> Secret:
    """env:NAME or file:/path -> its content. Messages never quote the field's content: a secret
    pasted in by mistake must not reach a log."""
    if not isinstance(ref, str) or not ref.startswith(("env:", "file:")):
        problems.append(
            f"{where}: must be a reference, env:NAME or file:/path (the value itself must not be written "
            "in this file: put it in an environment variable or a mounted Kubernetes Secret)"
        )
        return Secret("")
    kind, _, name = ref.partition(":")
    if kind == "env":
        value = environ.get(name)
        if not name or value is None:
            problems.append(f"{where}: environment variable {name or '(no name)'} is not set; set it")
            return Secret("")
    else:
        path = Path(name)
        if not path.is_absolute():
            problems.append(f"{where}: {name!r} must be an absolute path, e.g. file:/var/run/secrets/...")
            return Secret("")
        try:
            value = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or type(exc).__name__
            problems.append(f"{where}: cannot read {name} ({why}); mount the Secret there or fix the path")
            return Secret("")
        value = value.removesuffix("\n").removesuffix("\r")
    if not value.strip():
        problems.append(f"{where}: {ref} is empty; fill it with the credential")
        return Secret("")
    if value != value.strip() or any(c in value for c in "\r\n\t"):
        problems.append(f"{where}: {ref} has spaces or line breaks in or around the credential; remove them")
        return Secret("")
    return Secret(value)


_HOW = {
    "seller_id": "write the seller's Merchant Token (Seller Central > Settings > Account Info), e.g. "
    "A3TH9S8BH6GOGM",
    "region": "write na, eu or fe (the SP-API endpoint that serves the account's marketplaces)",
    "marketplaces": 'list the marketplace ids to watch, e.g. ["A1PA6795UKMFR9"]',
    "orders_api": "write v2026 (Orders API 2026-01-01: says who cancelled) or v0 (deprecated 2027-03-27)",
    "client_id": "write env:NAME or file:/path holding the LWA app's client id (here or in defaults)",
    "client_secret": "write env:NAME or file:/path holding the LWA app's client secret (here or in defaults)",
    "refresh_token": "write env:NAME or file:/path holding the seller's refresh token for this app",
}
_EXAMPLE_URL = {"endpoint": REGION_ENDPOINTS["eu"], "lwa_endpoint": LWA_TOKEN_ENDPOINT}
