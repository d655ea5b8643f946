"""Callers file: parsed strictly, tokens compared by digest, reloaded on change, kept when broken."""

import os
import time
from pathlib import Path

import pytest

from cancelguard.api.auth import CallerRegistry, CallersFileError, parse_callers, token_digest
from cancelguard.demo_credentials import callers_toml


def test_a_token_finds_its_caller_and_nothing_else_does() -> None:
    callers = parse_callers(callers_toml({"oms": ("tok-oms", ["S1", "S2"]), "wms": ("tok-wms", ["S2"])}))
    oms = callers.authenticate("tok-oms")
    assert oms is not None and oms.name == "oms" and oms.may_see("S1") and not oms.may_see("S3")
    assert callers.authenticate("tok-wms").name == "wms"  # type: ignore[union-attr]
    for bad in ("", "tok-om", "tok-oms ", "TOK-OMS", token_digest("tok-oms"), "\udcff"):
        assert callers.authenticate(bad) is None


def test_rotation_two_digests_one_caller() -> None:
    digests = f'"{token_digest("old")}", "{token_digest("new")}"'
    text = f'[callers.oms]\ntoken_sha256 = [{digests}]\nseller_accounts = ["S"]\n'
    callers = parse_callers(text)
    assert callers.authenticate("old") == callers.authenticate("new") is not None


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[callers", "not TOML"),
        ('[callers.oms]\nseller_accounts = ["S"]\n', "token_sha256"),
        ('[callers.oms]\ntoken_sha256 = ["abc"]\n', "64 hex"),
        (f'[callers.oms]\ntoken_sha256 = ["{"0" * 64}"]\nseller_accounts = ["S 1"]\n', "seller account"),
        (f'[callers.oms]\ntoken_sha256 = ["{"0" * 64}"]\nrole = "admin"\n', "unknown keys"),
        (
            f'[callers.a]\ntoken_sha256 = ["{"0" * 64}"]\n[callers.b]\ntoken_sha256 = ["{"0" * 64}"]\n',
            "another caller",
        ),
    ],
)
def test_a_bad_file_is_refused_with_where_and_never_the_token(text: str, says: str) -> None:
    with pytest.raises(CallersFileError) as err:
        parse_callers(text, "callers.toml")
    assert says in str(err.value) and "callers.toml" in str(err.value)


def test_the_registry_follows_the_file_and_keeps_the_callers_when_it_breaks(tmp_path: Path) -> None:
    path = tmp_path / "callers.toml"
    path.write_text(callers_toml({"oms": ("one", ["S"])}))
    registry = CallerRegistry(path)
    registry.load()
    assert registry.callers.authenticate("one") is not None
    time.sleep(0.01)
    path.write_text(callers_toml({"oms": ("two", ["S"])}))
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000))
    registry.reload_if_changed()
    assert registry.callers.authenticate("two") is not None and registry.callers.authenticate("one") is None
    path.write_text("[callers")  # a half-written file: the callers in force stay
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 2_000_000))
    registry.reload_if_changed()
    assert registry.callers.authenticate("two") is not None


def test_no_file_means_nobody_gets_in() -> None:
    registry = CallerRegistry(None)
    registry.load()
    assert registry.callers.authenticate("anything") is None


def test_the_compose_demo_callers_file_is_the_demos() -> None:
    from cancelguard.demo_credentials import COMPOSE_SELLERS, DEMO_CALLER, DEMO_SELLERS, DEMO_TOKEN
    from cancelguard.simulator.spapi.generator import DEFAULT_SELLERS

    committed = Path(__file__).resolve().parents[3] / "deploy" / "compose" / "demo-callers.toml"
    assert committed.read_text() == callers_toml({DEMO_CALLER: (DEMO_TOKEN, COMPOSE_SELLERS)})
    # the demo's sellers, and the simulator's that Compose's pollers poll
    assert (*DEMO_SELLERS, *DEFAULT_SELLERS) == COMPOSE_SELLERS
