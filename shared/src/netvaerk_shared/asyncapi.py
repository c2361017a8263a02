"""The AsyncAPI 3.0 document of a service's events, generated with FastStream from the contracts themselves.

Each channel is one event type on its NATS subject pattern; its message payload is the CloudEvents envelope with the
contract as `data`, so what the document says is what a subscriber receives. Served at /asyncapi.json.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Literal

from faststream import AsyncAPI
from faststream.nats import JStream, NatsBroker, PullSub
from pydantic import BaseModel, ConfigDict, Field, create_model

from . import contracts, topology
from .contracts import EventData
from .contracts import meetings as meetings_contracts
from .contracts.members import MemberErased

PRODUCES: dict[str, tuple[type[EventData], ...]] = {
    "members": (
        contracts.GroupCreated,
        contracts.GroupUpdated,
        contracts.MemberRegistered,
        contracts.MemberUpdated,
        contracts.MemberJoined,
        contracts.MemberLeft,
        contracts.MemberRoleChanged,
        contracts.MemberJoinRequested,
        contracts.MemberJoinDeclined,
        contracts.SeatTransferred,
        contracts.OrganisationMembershipChanged,
        MemberErased,
    ),
    "meetings": (
        contracts.MeetingScheduled,
        meetings_contracts.MeetingRescheduled,
        meetings_contracts.MeetingCancelled,
        meetings_contracts.AgendaUpdated,
        meetings_contracts.RsvpRecorded,
        meetings_contracts.WaitlistPromoted,
        meetings_contracts.AttendanceRecorded,
        meetings_contracts.ProposalSubmitted,
        meetings_contracts.ProposalAccepted,
        meetings_contracts.ProposalDeclined,
    ),
    "notifications": (contracts.NotificationSent, contracts.NotificationFailed),
}


def envelope_model(contract: type[EventData]) -> type[BaseModel]:
    """`<Contract>CloudEvent`: the structured-mode CloudEvent carrying `contract` as its data."""
    # built at run time from the contract's own constants (Literal of a value mypy cannot know): hence Any
    fields: dict[str, Any] = dict(
        specversion=(Literal["1.0"], ...),
        id=(str, Field(description="UUID; also the Nats-Msg-Id header. Drop repeats by it.")),
        source=(Literal[contract.source()], ...),
        type=(Literal[contract.event_type()], ...),
        subject=(str, Field(description=f"the {contract.subject_field}")),
        time=(datetime, ...),
        datacontenttype=(Literal["application/json"], ...),
        dataschema=(str | None, None),
        traceparent=(str | None, Field(None, description="W3C trace context (CloudEvents distributed tracing)")),
        causationid=(str | None, Field(None, description="id of the event that caused this one")),
        data=(contract, ...),
    )
    return create_model(
        f"{contract.__name__}CloudEvent",
        __config__=ConfigDict(title=contract.event_type()),
        __doc__=(contract.__doc__ or "").strip(),
        **fields,
    )


def _documented_handler(model: type[BaseModel]) -> Callable[[Any], Awaitable[None]]:
    """A handler that only carries the payload type for the document; the real consumers are in consumer.py."""

    async def handler(body: Any) -> None:
        return None

    handler.__annotations__ = {"body": model, "return": None}
    return handler


def specification(
    service: str, consumes: Sequence[type[EventData]] = (), *, server: str = "nats://nats:4222", version: str = "1.0.0"
) -> dict[str, Any]:
    """`server`: the NATS URL to name in the document (without credentials)."""
    broker = NatsBroker(server)
    own = JStream(topology.stream_for(service), declare=False)
    for contract in PRODUCES.get(service, ()):
        broker.publisher(
            f"{contract.subject_prefix()}.*",
            stream=own,
            schema=envelope_model(contract),
            title=contract.event_type(),
            description=f"{(contract.__doc__ or '').strip()} "
            f"Subject: {contract.subject_prefix()}.<{contract.subject_field}>;"
            f" stream {topology.stream_for(service)}; header Nats-Msg-Id = id.",
        )
    for contract in consumes:
        durable = topology.durable_name(service, contract)
        broker.subscriber(
            f"{contract.subject_prefix()}.*",
            stream=JStream(topology.stream_for(contract.service), declare=False),
            durable=durable,
            pull_sub=PullSub(batch_size=1),
            title=durable,
            description=f"{service} consumes {contract.event_type()} with the durable pull consumer {durable}.",
        )(_documented_handler(envelope_model(contract)))
    doc = AsyncAPI(
        broker,
        title=f"Netværk {service} events",
        version=version,
        description=f"Events published by the {service} service on NATS JetStream as CloudEvents 1.0 "
        "(structured JSON mode), and the events it consumes.",
    )
    return doc.to_specification().to_jsonable()
