"""Request validation and page tokens: tamper-evident, bound to their query, never trusted."""

import base64
import json

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cancelguard.api import validation
from cancelguard.api.errors import ApiError
from cancelguard.domain.policy import PolicyBook

TOKENS = validation.PageTokens(b"secret")
QUERY = {"rpc": "List", "seller": "S", "marketplace": "ATVPDKIKX0DER"}


def test_a_token_round_trips_for_its_own_query() -> None:
    token = TOKENS.encode(QUERY, {"at": "2026-12-01T00:00:00+00:00", "id": "114-1"})
    assert TOKENS.decode(token, QUERY) == {"at": "2026-12-01T00:00:00+00:00", "id": "114-1"}


def _refused(token: str, query: dict[str, str] = QUERY) -> str:
    with pytest.raises(ApiError) as err:
        TOKENS.decode(token, query)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    return err.value.reason


def test_tokens_of_another_query_key_or_edit_are_refused() -> None:
    token = TOKENS.encode(QUERY, {"at": "x", "id": "1"})
    assert _refused(token, {**QUERY, "seller": "OTHER"}) == "BAD_PAGE_TOKEN"
    assert _refused(validation.PageTokens(b"other").encode(QUERY, {"at": "x", "id": "1"})) == "BAD_PAGE_TOKEN"
    body, mac = token.split(".")
    edited = json.loads(base64.urlsafe_b64decode(body + "=="))
    edited["p"]["id"] = "2"
    forged = base64.urlsafe_b64encode(json.dumps(edited).encode()).rstrip(b"=").decode()
    assert _refused(f"{forged}.{mac}") == "BAD_PAGE_TOKEN"
    assert _refused("x" * 2000) == "BAD_PAGE_TOKEN"


@given(st.text(max_size=300))
def test_any_string_is_a_refused_token(token: str) -> None:
    assert _refused(token) == "BAD_PAGE_TOKEN"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "MISSING_FIELD"),
        ("ATVPDKIKX0DER ", "BAD_IDENTIFIER"),
        ("A\x00", "BAD_IDENTIFIER"),
        ("NOPE", "UNKNOWN_MARKETPLACE"),
    ],
)
def test_marketplaces_are_checked_not_trimmed(value: str, reason: str) -> None:
    with pytest.raises(ApiError) as err:
        validation.policy(PolicyBook(), value)
    assert (err.value.reason, err.value.field) == (reason, "marketplace_id")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0, 1e10])
def test_counts_must_be_finite_and_in_range(value: float) -> None:
    with pytest.raises(ApiError):
        validation.count(value, "expected_daily_orders")
