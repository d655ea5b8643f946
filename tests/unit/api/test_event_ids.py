"""The ids of the order events the API's writes publish: one per caller and request, within the bounds."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cancelguard.api.servicers import seller_event_id
from cancelguard.domain import bounds

WHAT = ("decision", "label", "shipment")
# identifiers as the callers file and validation.request_id accept them: printable ASCII, no space
identifiers = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=64)


@given(st.sampled_from(WHAT), identifiers, identifiers)
def test_an_event_id_is_a_valid_event_id(what: str, caller: str, request_id: str) -> None:
    event_id = seller_event_id(what, caller, request_id)
    assert bounds.identifier(event_id, "event_id", max_len=bounds.MAX_EVENT_ID) == event_id


@given(st.sampled_from(WHAT), identifiers, identifiers, identifiers, identifiers)
def test_two_callers_or_requests_never_share_an_event_id(
    what: str, caller: str, request_id: str, other_caller: str, other_request_id: str
) -> None:
    same = (caller, request_id) == (other_caller, other_request_id)
    assert (
        seller_event_id(what, caller, request_id) == seller_event_id(what, other_caller, other_request_id)
    ) == same


def test_colons_in_names_do_not_make_two_requests_one() -> None:
    assert seller_event_id("label", "a:b", "c") != seller_event_id("label", "a", "b:c")
    assert seller_event_id("label", "oms", "1") != seller_event_id("label", "helpdesk", "1")
