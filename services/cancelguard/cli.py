"""`cancelguard`: one command for people and for the service processes.

cancelguard up | down | status           the local Kafka + Postgres (see deploy/local)
cancelguard demo [--json]                the whole pipeline on the SP-API simulator; prints the result, exits
cancelguard demo --attach                the same against services that run already (Compose, Kubernetes)
cancelguard run                          the same, then stays up until Ctrl-C
cancelguard serve ingestion|metrics|api|pollers
                                         one service (what the containers run); pollers read
                                         Amazon's APIs for the accounts in CANCELGUARD_ACCOUNTS_FILE
cancelguard health ingestion|metrics|api|pollers
                                         exit 0 if that service's gRPC health on 127.0.0.1 says
                                         SERVING (the Compose health check)
cancelguard migrate                      apply the Postgres migrations
cancelguard rebuild [--from TIME]        recompute orders and buckets from the events topic into a new
                                         generation (with this configuration's policy) and switch to it
cancelguard cr [SELLER MARKETPLACE] [--live] [--as-of TIME] [--history [DAYS]] [--json]
                                         Cancellation Rates through the API (a chart with --history)
cancelguard orders SELLER [--marketplace ID] [--action CODE] [--needs-review] [--json]
cancelguard requests SELLER MARKETPLACE [--watch] [--json]
                                         open cancellation requests with the action to take
cancelguard decide SELLER MARKETPLACE ORDER REASON [--item ID] [--feed FILE] [--submit]
                                         cancel an order (checked first); prints the cancel feed, or
                                         with --submit has cancelguard submit it to Amazon
cancelguard feed SELLER EVENT_ID         where a submitted cancel feed stands (Amazon's report)
cancelguard api-token NAME [--seller ID]  a new token for a calling service, with its callers-file entry
cancelguard dead-letters list [--reason CODE] [--stage STAGE] [--json]
cancelguard dead-letters replay (PARTITION:OFFSET... | --reason CODE | --all) [--dry-run]
                                         show the records no stage could read, with why; re-send
                                         chosen ones to their source topic after a fix
cancelguard simulator [OPTIONS]          a stand-in for Amazon's SP-API on loopback (dev and tests;
                                         `cancelguard simulator --help`)
cancelguard publish order-change|buyer-message FILE...
                                         put raw JSON records (one per line, or one JSON document per
                                         file) on the raw topics, as Amazon's bridge or the helpdesk would
cancelguard import-report FILE... --seller SELLER [--marketplace ID] [--kind unshipped|all-orders]
                          [--encoding utf-8|windows-1252|windows-31j|...] [--as-of TIME]
                                         import Amazon order report files (Unshipped Orders, All Orders)
                                         as order events; bad rows go to the dead-letter topic
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from pydantic import ValidationError


def _settings():  # imported lazily: `cancelguard up` must work before anything else is configured
    from cancelguard.config import Settings

    return Settings()


def _serve(service: str) -> int:
    from cancelguard import logs
    from cancelguard.runtime import (
        OutageTooLong,
        StartupError,
        install_stop_signals,
        run_on_loop,
        start_metrics_endpoint,
    )

    settings = _settings()
    logs.setup(f"cancelguard-{service}", settings.log_level)

    async def main() -> None:
        stop = asyncio.Event()
        install_stop_signals(stop)
        if service == "ingestion":
            from cancelguard.ingestion.service import IngestionService

            start_metrics_endpoint(settings.ingestion_metrics_port, settings.bind_host)
            await IngestionService(settings).run(stop)
        elif service == "pollers":
            from cancelguard.ingestion.pollers.service import PollersService

            start_metrics_endpoint(settings.pollers_metrics_port, settings.bind_host)
            await PollersService(settings).run(stop)
        elif service == "metrics":
            from cancelguard.metrics.service import MetricsService

            start_metrics_endpoint(settings.metrics_metrics_port, settings.bind_host)
            await MetricsService(settings).run(stop)
        else:
            from cancelguard.api.server import serve

            start_metrics_endpoint(settings.api_metrics_port, settings.bind_host)
            await serve(settings, stop)

    import logging

    log = logging.getLogger("cancelguard")
    from cancelguard.accounts import AccountsError

    try:
        run_on_loop(main(), settings.api_event_loop if service == "api" else "asyncio")
    except AccountsError as exc:
        log.error("cannot start: %s", exc)
        return 2
    except StartupError as exc:
        log.error("cannot start: %s", exc)
        return 2
    except OutageTooLong as exc:
        log.error("stopping: %s", exc)
        return 3
    except Exception:
        # logged as JSON like everything else; the orchestrator restarts the process, and the stored
        # offsets make the restart pick up exactly where the last committed batch ended
        log.exception("the %s service stopped on an unexpected error", service)
        return 1
    return 0


def _migrate() -> int:
    from cancelguard import db

    settings = _settings()
    applied = asyncio.run(db.migrate(dsn=settings.postgres_dsn, schema=settings.postgres_schema))
    print(
        f"schema {settings.postgres_schema}: "
        + (f"applied {', '.join(applied)}" if applied else "up to date")
    )
    return 0


def _rebuild(from_time: str | None, timeout_s: float | None) -> int:
    """Exit codes for a Kubernetes Job: 0 switched, 2 cannot connect, 3 outage, 4 not caught up, 1 else."""
    import logging

    from cancelguard import logs
    from cancelguard.domain.model import parse_time
    from cancelguard.metrics.rebuild import NotCaughtUp, rebuild
    from cancelguard.runtime import StartupError, install_stop_signals

    settings = _settings()
    logs.setup("cancelguard-rebuild", settings.log_level)
    log = logging.getLogger("cancelguard")
    since = parse_time(from_time, "--from") if from_time else None

    async def main() -> None:
        stop = asyncio.Event()
        install_stop_signals(stop)
        await rebuild(settings, from_time=since, timeout_s=timeout_s, stop=stop)

    try:
        asyncio.run(main())
    except StartupError as exc:
        log.error("cannot start: %s", exc)
        return 2
    except NotCaughtUp as exc:
        log.error("not switched: %s", exc)
        return 4
    except (OSError, TimeoutError) as exc:
        log.error("stopping: %s", exc)
        return 3
    except Exception:
        log.exception("the rebuild stopped on an unexpected error; the active generation is unchanged")
        return 1
    return 0


def _health(service: str) -> int:
    from grpc_health.v1 import health_pb2

    from cancelguard.processes import health_port, health_status

    address = f"127.0.0.1:{health_port(_settings(), service)}"
    status = asyncio.run(health_status(address, timeout=3))
    name = "no answer" if status is None else health_pb2.HealthCheckResponse.ServingStatus.Name(status)
    print(f"{service} at {address}: {name}")
    return 0 if status == health_pb2.HealthCheckResponse.SERVING else 1


def _dead_letters(args: argparse.Namespace) -> int:
    from cancelguard import dead_letter_tools as tools

    settings = _settings()
    letters = asyncio.run(tools.read_dead_letters(settings, progress=tools.say_progress))
    chosen = tools.select(letters, ids=args.ids, reason=args.reason, stage=args.stage)
    if args.action == "list":
        if args.json:
            for d in chosen:
                print(json.dumps(d.as_json(), ensure_ascii=False))
        else:
            tools.print_table(chosen)
            print(
                f"{len(chosen)} of {len(letters)} dead letters in {settings.dead_letter_topic}",
                file=sys.stderr,
            )
        return 0
    if not (args.ids or args.reason or args.stage or args.all):
        print(
            "cancelguard dead-letters replay: name the dead letters (PARTITION:OFFSET), or give --reason, "
            "--stage or --all",
            file=sys.stderr,
        )
        return 2
    results = asyncio.run(tools.replay(settings, chosen, dry_run=args.dry_run))
    sent = [r for r in results if r.sent_from]
    for r in results:
        d = r.letter
        what = f"{d.partition}:{d.offset} ({d.reason_code})"
        print(
            f"{'would replay' if args.dry_run else 'replayed'} {what} from {r.sent_from}"
            if r.sent_from
            else f"not replayed {what}: {r.why_not}"
        )
    print(f"{'would replay' if args.dry_run else 'replayed'} {len(sent)} of {len(results)}", file=sys.stderr)
    return 0 if len(sent) == len(results) else 1


def _publish(kind: str, files: list[str]) -> int:
    from cancelguard import kafka

    settings = _settings()
    topic = settings.order_change_topic if kind == "order-change" else settings.buyer_messages_topic
    records: list[bytes] = []
    for name in files:
        text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
        stripped = text.strip()
        if stripped.startswith("{") and "\n{" not in stripped:
            records.append(json.dumps(json.loads(stripped)).encode())  # one JSON document
        else:
            records += [line.encode() for line in stripped.splitlines() if line.strip()]

    def progress(done: int, total: int) -> None:
        print(f"published {done}/{total} records to {topic}", file=sys.stderr)

    asyncio.run(
        kafka.publish(
            settings, topic, [(None, r) for r in records], client_id="cancelguard-cli", progress=progress
        )
    )
    return 0


_REPORT_KINDS = {"unshipped": "UNSHIPPED", "all-orders": "ALL_ORDERS"}


def _import_report(args: argparse.Namespace) -> int:
    from cancelguard.domain import bounds
    from cancelguard.domain.model import InvalidInput, parse_time
    from cancelguard.domain.policy import marketplace
    from cancelguard.ingestion.adapters.order_report import ReportKind, codec_for
    from cancelguard.ingestion.report_import import ImportOptions, ProgressBar, import_reports, summary

    try:  # the options, before anything is read or sent
        options = ImportOptions(
            seller_account=bounds.identifier(args.seller, "--seller"),
            marketplace_id=marketplace(args.marketplace).id if args.marketplace else None,
            kind=ReportKind[_REPORT_KINDS[args.kind]] if args.kind else None,
            encoding=codec_for(args.encoding),
            as_of=parse_time(args.as_of, "--as-of") if args.as_of else None,
        )
    except InvalidInput as exc:
        print(f"cancelguard import-report: {exc}", file=sys.stderr)
        return 2
    from aiokafka.errors import KafkaError

    settings = _settings()
    bar = ProgressBar()
    try:
        results = asyncio.run(import_reports(settings, [Path(f) for f in args.files], options, progress=bar))
    except (KafkaError, TimeoutError) as exc:
        print(f"cancelguard import-report: Kafka at {settings.kafka_bootstrap}: {exc!r}", file=sys.stderr)
        return 1
    finally:
        bar.done()
    print(summary(results))
    return 1 if any(r.error for r in results) else 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["simulator"]:  # its own parser: argparse cannot pass "--option"s through a subcommand
        from cancelguard.simulator.spapi.server import main as simulator_main

        return simulator_main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="cancelguard", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("up", "start the local Kafka and Postgres"),
        ("down", "stop them"),
        ("status", "show whether they run"),
    ):
        sub.add_parser(name, help=text)
    demo_cmd = sub.add_parser("demo", help="run the pipeline on a demo scenario, print the result, stop")
    demo_cmd.add_argument(
        "--attach",
        action="store_true",
        help="the services run already (Compose, Kubernetes): only publish the scenario to "
        "CANCELGUARD_KAFKA_BOOTSTRAP and read the result through the API on 127.0.0.1:CANCELGUARD_API_PORT",
    )
    demo_cmd.add_argument("--json", action="store_true", help="print the result as JSON (progress on stderr)")
    sub.add_parser("run", help="like demo, then stay up until Ctrl-C")
    serve = sub.add_parser("serve", help="run one service")
    serve.add_argument("service", choices=("ingestion", "metrics", "api", "pollers"))
    health_cmd = sub.add_parser("health", help="ask a service's gRPC health (exit 0 if SERVING)")
    health_cmd.add_argument("service", choices=("ingestion", "metrics", "api", "pollers"))
    sub.add_parser("migrate", help="apply the Postgres migrations")
    rebuild = sub.add_parser(
        "rebuild", help="recompute orders and buckets into a new generation, then switch"
    )
    rebuild.add_argument("--from", dest="from_time", help="read the events topic from this ISO 8601 time")
    rebuild.add_argument("--timeout", type=float, help="give up (exit 4) if not caught up after this many s")
    from cancelguard import cli_api

    cli_api.add_arguments(sub)
    sub.add_parser("simulator", help="a stand-in for Amazon's SP-API on loopback (--help for options)")
    dl = sub.add_parser("dead-letters", help="list the dead letters, or replay chosen ones after a fix")
    dl.add_argument("action", choices=("list", "replay"))
    dl.add_argument("ids", nargs="*", metavar="PARTITION:OFFSET", help="dead letters to replay (see `list`)")
    dl.add_argument("--reason", help="only this reason code, e.g. UNKNOWN_MARKETPLACE")
    dl.add_argument(
        "--stage", choices=("ingestion", "metrics", "import-report", "pollers"), help="only this stage"
    )
    dl.add_argument("--all", action="store_true", help="replay every dead letter that matches")
    dl.add_argument("--json", action="store_true", help="list as JSON lines")
    dl.add_argument("--dry-run", action="store_true", help="say what would be replayed, send nothing")
    pub = sub.add_parser("publish", help="put raw JSON records on a raw topic")
    pub.add_argument("kind", choices=("order-change", "buyer-message"))
    pub.add_argument("files", nargs="+", help="JSON-lines files, or - for standard input")
    imp = sub.add_parser(
        "import-report",
        help="import Amazon order report files as order events",
        description="Import Unshipped Orders (GET_FLAT_FILE_ACTIONABLE_ORDER_DATA_SHIPPING) and All Orders "
        "(GET_FLAT_FILE_ALL_ORDERS_DATA_BY_LAST_UPDATE_GENERAL) flat files, plain or gzip. Bad rows go to "
        "the dead-letter topic; the exit code is non-zero only if a file cannot be read at all.",
    )
    imp.add_argument("files", nargs="+", metavar="FILE", help="report files (tab-separated, with a header)")
    imp.add_argument(
        "--seller", required=True, help="the seller account (Amazon's seller id) the files are of"
    )
    imp.add_argument(
        "--marketplace",
        help="marketplace id for rows whose sales-channel names no Amazon marketplace (or files without it)",
    )
    imp.add_argument("--kind", choices=sorted(_REPORT_KINDS), help="default: detected from the header")
    imp.add_argument(
        "--encoding",
        default="utf-8",
        help="utf-8 (default; lines that are not UTF-8 are read as Windows-1252, or Windows-31J for "
        "Japan), windows-1252 / iso-8859-1 (EU), windows-31j / shift_jis (JP)",
    )
    imp.add_argument(
        "--as-of",
        help="when Amazon produced an Unshipped Orders report (ISO 8601, e.g. 2026-11-20T10:00:00Z); "
        "default: the file's modification time",
    )
    args = parser.parse_args(argv)

    try:
        if args.command in ("up", "down", "status"):
            from cancelguard.localstack import stack

            return stack.main([args.command])
        if args.command in ("demo", "run"):
            from cancelguard import demo

            return demo.main(
                keep_running=args.command == "run",
                attach=getattr(args, "attach", False),
                as_json=getattr(args, "json", False),
            )
        if args.command == "serve":
            return _serve(args.service)
        if args.command == "health":
            return _health(args.service)
        if args.command == "migrate":
            return _migrate()
        if args.command == "rebuild":
            return _rebuild(args.from_time, args.timeout)
        if args.command == "dead-letters":
            return _dead_letters(args)
        if args.command in ("cr", "orders", "requests", "decide", "feed", "api-token"):
            from cancelguard import cli_api

            return cli_api.run(args, _settings().api_port)
        if args.command == "import-report":
            return _import_report(args)
        return _publish(args.kind, args.files)
    except ValidationError as exc:
        print(f"cancelguard: bad setting: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"cancelguard: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
