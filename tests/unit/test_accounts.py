"""The seller accounts file: every bad field fails at start, naming the field and the fix; credentials are
references, resolved from the environment or a file, and never shown."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cancelguard.accounts import AccountsError, OrdersApi, load_accounts, parse_accounts, shard_of
from cancelguard.amazon import LWA_TOKEN_ENDPOINT, REGION_ENDPOINTS
from cancelguard.amazon.operations import MARKETPLACE_REGIONS
from cancelguard.domain.policy import MARKETPLACES

SECRET, TOKEN = "s3cr3t-client-secret-value", "Atzr|refresh-token-value"
ENV = {"LWA_ID": "amzn1.application-oa2-client.abc", "LWA_SECRET": SECRET, "REFRESH_DE": TOKEN}


def doc(**account: Any) -> dict[str, Any]:
    entry = {
        "seller_id": "A3TH9S8BH6GOGM",
        "region": "eu",
        "marketplaces": ["A1PA6795UKMFR9", "A1F83G8C2ARO7P"],
        "orders_api": "v2026",
        "refresh_token": "env:REFRESH_DE",
        **account,
    }
    return {
        "defaults": {"client_id": "env:LWA_ID", "client_secret": "env:LWA_SECRET"},
        "accounts": [{k: v for k, v in entry.items() if v is not DROP}],
    }


DROP = object()


def test_a_good_file_reads_into_connections() -> None:
    [account] = parse_accounts(doc(), source="t", environ=ENV).accounts
    assert account.orders_api is OrdersApi.V2026 and account.marketplaces == (
        "A1PA6795UKMFR9",
        "A1F83G8C2ARO7P",
    )
    conn = account.connection()
    assert conn.endpoint == REGION_ENDPOINTS["eu"] and conn.lwa_endpoint == LWA_TOKEN_ENDPOINT
    assert (
        conn.credentials.client_secret.reveal() == SECRET and conn.credentials.refresh_token.reveal() == TOKEN
    )
    for text in (repr(account), str(account), repr(conn)):
        assert SECRET not in text and TOKEN not in text


def test_references_to_files_as_kubernetes_secrets_mount_them(tmp_path: Path) -> None:
    secret = tmp_path / "client-secret"
    secret.write_text(SECRET + "\n")  # the newline a Secret written with echo carries
    d = doc(client_secret=f"file:{secret}", endpoint="http://127.0.0.1:8700")
    path = tmp_path / "accounts.json"
    path.write_text(json.dumps(d))
    [account] = load_accounts(path, environ=ENV).accounts
    assert (
        account.credentials.client_secret.reveal() == SECRET and account.endpoint == "http://127.0.0.1:8700"
    )


@pytest.mark.parametrize(
    ("changes", "field", "fix"),
    [
        ({"seller_id": DROP}, "accounts[0].seller_id: missing", "Merchant Token"),
        ({"seller_id": "A3 TH9"}, "accounts[0].seller_id: not a seller id", "e.g. A3TH9S8BH6GOGM"),
        ({"region": "europe"}, "accounts[0].region: 'europe' is not a region", "na, eu or fe"),
        ({"marketplaces": []}, "accounts[0].marketplaces", "non-empty list"),
        (
            {"marketplaces": ["DE"]},
            "accounts[0].marketplaces: 'DE' is not an Amazon marketplace id",
            "ATVPDKIKX0DER",
        ),
        (
            {"marketplaces": ["ATVPDKIKX0DER"]},
            "ATVPDKIKX0DER (US) is served by region na",
            "under a na account",
        ),
        ({"marketplaces": ["A1PA6795UKMFR9", "A1PA6795UKMFR9"]}, "lists a marketplace twice", ""),
        ({"orders_api": "v1"}, "accounts[0].orders_api: 'v1' is not an Orders API", "v2026"),
        ({"refresh_token": DROP}, "accounts[0].refresh_token: missing", "env:NAME or file:/path"),
        ({"refresh_token": TOKEN}, "accounts[0].refresh_token: must be a reference", "Kubernetes Secret"),
        ({"refresh_token": "env:NOT_SET"}, "environment variable NOT_SET is not set", "set it"),
        ({"refresh_token": "file:relative/path"}, "must be an absolute path", "file:/var/run"),
        ({"refresh_token": "file:/nonexistent/token"}, "cannot read /nonexistent/token", "mount the Secret"),
        (
            {"endpoint": "sellingpartnerapi-eu.amazon.com"},
            "accounts[0].endpoint: must be an http(s) URL",
            "https://",
        ),
        ({"poll_every": 5}, "accounts[0].poll_every: unknown field", "known: seller_id"),
    ],
)
def test_each_bad_field_is_named_with_its_fix(changes: dict[str, Any], field: str, fix: str) -> None:
    with pytest.raises(AccountsError) as caught:
        parse_accounts(doc(**changes), source="accounts.json", environ=ENV)
    message = str(caught.value)
    assert field in message and fix in message and "accounts.json" in message
    assert SECRET not in message and TOKEN not in message  # not even a secret pasted in by mistake


def test_every_problem_is_listed_at_once() -> None:
    d = doc(region="mars", orders_api="v3")
    d["accounts"].append({"seller_id": "A1OTHER"})
    with pytest.raises(AccountsError) as caught:
        parse_accounts(d, source="t", environ=ENV)
    message = str(caught.value)
    assert "accounts[0].region" in message and "accounts[0].orders_api" in message
    assert "accounts[1].region: missing" in message and "accounts[1].marketplaces: missing" in message


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{", "not JSON"),
        ("[]", "must be a JSON object"),
        ('{"accounts": []}', "non-empty list"),
        ('{"accounts": [1]}', "accounts[0]: must be an object"),
        ('{"account": []}', "account: unknown field"),
        ('{"defaults": {"seller_id": "A1"}, "accounts": []}', "defaults.seller_id: belongs to each account"),
    ],
)
def test_a_file_that_is_not_an_accounts_file(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "accounts.json"
    path.write_text(text)
    with pytest.raises(AccountsError, match=says.replace("[", r"\[").replace("]", r"\]")):
        load_accounts(path, environ=ENV)


def test_a_missing_file_says_which_setting_names_it(tmp_path: Path) -> None:
    with pytest.raises(AccountsError, match="CANCELGUARD_ACCOUNTS_FILE"):
        load_accounts(tmp_path / "nope.json", environ=ENV)


def test_a_seller_is_listed_once_per_region() -> None:
    d = doc()
    d["accounts"].append({**d["accounts"][0], "marketplaces": ["A13V1IB3VIYZZH"]})
    with pytest.raises(AccountsError, match="once per region"):
        parse_accounts(d, source="t", environ=ENV)
    d["accounts"][1] = {**d["accounts"][0], "region": "na", "marketplaces": ["ATVPDKIKX0DER"]}
    accounts = parse_accounts(d, source="t", environ=ENV)
    assert accounts.for_marketplace("A3TH9S8BH6GOGM", "ATVPDKIKX0DER").region == "na"  # type: ignore[union-attr]
    assert accounts.for_marketplace("A3TH9S8BH6GOGM", "A1PA6795UKMFR9").region == "eu"  # type: ignore[union-attr]
    assert accounts.for_marketplace("A3TH9S8BH6GOGM", "A1VC38T7YXB528") is None


def test_shards_split_the_accounts_stably() -> None:
    d = doc()
    d["accounts"] = [
        {**d["accounts"][0], "seller_id": f"A{n:013d}", "marketplaces": ["A1PA6795UKMFR9"]} for n in range(40)
    ]
    accounts = parse_accounts(d, source="t", environ=ENV)
    shards = [accounts.shard(i, 3).accounts for i in range(3)]
    assert sorted(a.seller_id for s in shards for a in s) == sorted(a.seller_id for a in accounts.accounts)
    assert all(shards)  # each process gets some
    assert shard_of("A3TH9S8BH6GOGM", 3) == 2  # CRC-32: the same in every process and every release
    with pytest.raises(AccountsError, match="CANCELGUARD_POLLER_SHARD"):
        accounts.shard(3, 3)


def test_every_marketplace_has_its_region() -> None:
    assert set(MARKETPLACE_REGIONS) == set(MARKETPLACES)


def test_the_compose_accounts_are_the_simulators_sellers_with_its_fake_credentials() -> None:
    """deploy/compose/amazon-simulator, the Secret-shaped directory Compose mounts into the pollers and
    the api: a valid accounts file for the simulator's default sellers in all its marketplaces, whose
    file: references resolve (here, against the directory itself) to the simulator's FAKE credentials."""
    from cancelguard.simulator.spapi.generator import DEFAULT_MARKETPLACES, DEFAULT_SELLERS
    from cancelguard.simulator.spapi.server import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

    directory = Path(__file__).resolve().parents[2] / "deploy" / "compose" / "amazon-simulator"
    mounted = "/var/run/secrets/cancelguard/amazon/"
    text = (directory / "accounts.json").read_text()
    assert text.count("file:") == text.count(f"file:{mounted}") > 0
    accounts = parse_accounts(
        json.loads(text.replace(f"file:{mounted}", f"file:{directory}/")), source="compose", environ={}
    )
    assert {a.seller_id for a in accounts.accounts} == set(DEFAULT_SELLERS)
    for seller in DEFAULT_SELLERS:
        mine = [a for a in accounts.accounts if a.seller_id == seller]
        assert sorted(m for a in mine for m in a.marketplaces) == sorted(DEFAULT_MARKETPLACES)
        for account in mine:
            assert account.endpoint == "http://amazon:8700"
            assert account.lwa_endpoint == "http://amazon:8700/auth/o2/token"
            assert account.credentials.client_id == DEFAULT_CLIENT_ID
            assert account.credentials.client_secret.reveal() == DEFAULT_CLIENT_SECRET
            assert account.credentials.refresh_token.reveal() == f"Atzr|sim-refresh-{seller}"
    assert {a.orders_api for a in accounts.accounts} == {OrdersApi.V0, OrdersApi.V2026}
