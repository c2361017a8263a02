"""Operator commands for the NATS side of Netværk, run with the `admin` NATS user (deploy/nats/nats.conf).

    python -m netvaerk_shared.operator declare
    python -m netvaerk_shared.operator provision-subscriber NAME STREAM [--filter SUBJECT]

Connection from the environment: NATS_URL (default nats://127.0.0.1:4222), NATS_USER, NATS_PASSWORD.

`declare` creates (or updates to the current config) the three event streams exactly as the services do
(topology.stream_config). `provision-subscriber` creates a durable pull consumer for one of the association's
outside systems, which the read-only `subscriber` user cannot create itself; that system then binds to it, e.g. with
nats-py `js.pull_subscribe_bind(durable=NAME, stream=STREAM)`, fetches and acks. Both commands are idempotent.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import Sequence

import nats
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, ConsumerInfo, DeliverPolicy
from nats.js.errors import NotFoundError

from . import topology
from .settings import OperatorSettings

# A consumer name is one subject token: no dots, wildcards or whitespace (NATS also forbids them in durable names).
_NAME = re.compile(r"[A-Za-z0-9_-]+")


class OperatorError(Exception):
    """A request the operator has to correct (bad name, unknown stream, clash with an existing consumer)."""


async def declare_streams(js: JetStreamContext, *, replicas: int = 1) -> list[str]:
    """Create or update MEMBERS, MEETINGS and NOTIFICATIONS with the services' own config; return their names."""
    for service in topology.STREAMS:
        await topology.ensure_stream(js, service, replicas=replicas)
    return list(topology.STREAMS.values())


def _service_durable(name: str) -> bool:
    """Names of the form the services use (`<service>-...`): never hand one of those to an outside system."""
    return any(name == service or name.startswith(f"{service}-") for service in topology.STREAMS)


def subscriber_consumer_config(name: str, stream: str, filter_subject: str | None = None) -> ConsumerConfig:
    """A durable pull consumer for an outside system: every stored event from the start, each acked explicitly."""
    if not _NAME.fullmatch(name):
        raise OperatorError(f"consumer name {name!r}: use letters, digits, '-' and '_' only")
    if _service_durable(name):
        raise OperatorError(f"consumer name {name!r} looks like a service's durable; pick another name")
    if stream not in topology.STREAMS.values():
        raise OperatorError(f"unknown stream {stream!r}; one of {', '.join(topology.STREAMS.values())}")
    prefix = stream.lower()
    filter_subject = filter_subject or f"{prefix}.>"
    if not (filter_subject == f"{prefix}.>" or filter_subject.startswith(f"{prefix}.")):
        raise OperatorError(f"filter {filter_subject!r} is outside stream {stream} ({prefix}.>)")
    return ConsumerConfig(
        name=name,
        durable_name=name,
        filter_subject=filter_subject,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        description=f"Outside system {name} (provisioned by netvaerk_shared.operator)",
    )


async def provision_subscriber(
    js: JetStreamContext, name: str, stream: str, filter_subject: str | None = None
) -> ConsumerInfo:
    """Create the durable pull consumer `name` on `stream`; when it already exists as asked, leave it alone."""
    stream = stream.upper()
    config = subscriber_consumer_config(name, stream, filter_subject)
    try:
        existing = await js.consumer_info(stream, name)
    except NotFoundError:
        return await js.add_consumer(stream, config)
    have = existing.config
    if have.deliver_subject:
        raise OperatorError(f"{stream}/{name} exists as a push consumer; delete it first to provision a pull one")
    if (have.filter_subject, have.deliver_policy, have.ack_policy) != (
        config.filter_subject,
        config.deliver_policy,
        config.ack_policy,
    ):
        raise OperatorError(
            f"{stream}/{name} exists with filter={have.filter_subject!r}, deliver={have.deliver_policy}, "
            f"ack={have.ack_policy}; delete it first (its position is lost) or pick another name"
        )
    return existing


# -- command line ----------------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m netvaerk_shared.operator",
        description="Netværk NATS operator commands (use the admin NATS user). "
        "Connection: NATS_URL, NATS_USER, NATS_PASSWORD from the environment.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    declare = commands.add_parser("declare", help="create or update the MEMBERS, MEETINGS and NOTIFICATIONS streams")
    declare.add_argument("--replicas", type=int, default=1, help="stream replicas (clustered NATS only)")
    provision = commands.add_parser(
        "provision-subscriber", help="create a durable pull consumer for an outside system (user `subscriber`)"
    )
    provision.add_argument("name", help="consumer (durable) name, e.g. crm-sync")
    provision.add_argument("stream", help="MEMBERS, MEETINGS or NOTIFICATIONS")
    provision.add_argument(
        "--filter",
        dest="filter_subject",
        default=None,
        help="subject filter within the stream (default: <stream>.>, every event)",
    )
    return parser


async def _quiet(exc: Exception) -> None:
    """nats-py logs every connection error with a traceback by default; main() reports the one that matters."""


async def _run(args: argparse.Namespace, settings: OperatorSettings) -> str:
    nc = await nats.connect(
        settings.nats_url,
        user=settings.nats_user,
        password=settings.nats_password,
        name="netvaerk-operator",
        allow_reconnect=False,
        max_reconnect_attempts=1,
        reconnect_time_wait=0.2,
        connect_timeout=5,
        error_cb=_quiet,
    )
    try:
        js = nc.jetstream(timeout=10)
        if args.command == "declare":
            names = await declare_streams(js, replicas=args.replicas)
            return "streams declared: " + ", ".join(names)
        info = await provision_subscriber(js, args.name, args.stream, args.filter_subject)
        return (
            f"pull consumer {info.stream_name}/{info.name} ready (filter {info.config.filter_subject}, "
            f"{info.num_pending} events pending); bind with durable={info.name!r}, stream={info.stream_name!r}"
        )
    finally:
        await nc.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        print(asyncio.run(_run(args, OperatorSettings())))
    except OperatorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # connection refused, authorization violation, JetStream API error, timeout
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
