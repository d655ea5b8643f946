"""The API's Prometheus series, kept as plain numbers: what a scrape sees."""

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from cancelguard.api.wiring import Telemetry


def _scraped(telemetry: Telemetry) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(telemetry)
    return registry


@pytest.mark.parametrize(
    ("seconds", "lowest_bucket"),
    [
        (0.0001, "0.0005"),
        (0.0005, "0.0005"),
        (0.0007, "0.001"),
        (0.3, "1.0"),
        (300.0, "300.0"),
        (400.0, "+Inf"),
    ],
)
def test_a_latency_counts_in_its_bucket_and_every_one_above(seconds: float, lowest_bucket: str) -> None:
    telemetry = Telemetry()
    telemetry.record("GetOrder", "OK", "oms", seconds)
    registry = _scraped(telemetry)
    bounds = [
        "0.0005",
        "0.001",
        "0.0025",
        "0.005",
        "0.01",
        "0.025",
        "0.05",
        "0.1",
        "0.25",
        "1.0",
        "10.0",
        "300.0",
    ]
    bounds.append("+Inf")
    for bound in bounds:
        value = registry.get_sample_value(
            "cancelguard_api_rpc_seconds_bucket", {"method": "GetOrder", "code": "OK", "le": bound}
        )
        assert value == (1.0 if bounds.index(bound) >= bounds.index(lowest_bucket) else 0.0), bound
    assert (
        registry.get_sample_value("cancelguard_api_rpc_seconds_sum", {"method": "GetOrder", "code": "OK"})
        == seconds
    )
    assert (
        registry.get_sample_value("cancelguard_api_rpc_seconds_count", {"method": "GetOrder", "code": "OK"})
        == 1
    )


def test_calls_are_counted_by_method_code_and_caller() -> None:
    telemetry = Telemetry()
    for method, code, caller in [("GetOrder", "OK", "oms")] * 3 + [
        ("GetOrder", "NOT_FOUND", "oms"),
        ("GetOrder", "OK", "wms"),
    ]:
        telemetry.record(method, code, caller, 0.001)
    registry = _scraped(telemetry)
    count = registry.get_sample_value
    assert count("cancelguard_api_rpcs_total", {"method": "GetOrder", "code": "OK", "caller": "oms"}) == 3
    assert (
        count("cancelguard_api_rpcs_total", {"method": "GetOrder", "code": "NOT_FOUND", "caller": "oms"}) == 1
    )
    assert count("cancelguard_api_rpcs_total", {"method": "GetOrder", "code": "OK", "caller": "wms"}) == 1
    assert count("cancelguard_api_rpc_seconds_count", {"method": "GetOrder", "code": "OK"}) == 4


def test_the_process_registry_serves_the_apis_series() -> None:
    import cancelguard.api.wiring  # noqa: F401  (registers the process's telemetry)

    text = generate_latest(REGISTRY).decode()
    assert "# TYPE cancelguard_api_rpcs_total counter" in text
    assert "# TYPE cancelguard_api_rpc_seconds histogram" in text
