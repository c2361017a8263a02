"""HTTP API of the notifications service: the delivery log and GDPR export. Its real work is event-driven."""
from __future__ import annotations

from typing import Literal
from uuid import UUID

from fastapi import APIRouter, Query

from netvaerk_shared.http import Problem, bearer_auth, service_app

from .. import views
from ..bootstrap import bootstrap
from ..domain.errors import DomainError


def api(runtime) -> APIRouter:
    router = APIRouter(dependencies=[bearer_auth(runtime.settings.api_token)])

    @router.get("/deliveries", tags=["deliveries"], summary="The delivery log (newest first)")
    async def delivery_log(member_id: UUID | None = None,
                           status: Literal["pending", "sent", "failed"] | None = None,
                           kind: Literal["welcome", "invitation"] | None = None,
                           limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0)):
        return await views.deliveries(runtime.engine, member_id=member_id, status=status, kind=kind, limit=limit,
                                      offset=offset)

    @router.get("/members/{member_id}/export", tags=["members"],
                summary="GDPR: everything this service stores about a member")
    async def export(member_id: UUID):
        data = await views.member_export(runtime.engine, member_id)
        if data is None:
            raise Problem(404, "Not found", f"This service holds nothing about member {member_id}.")
        return data

    return router


def create_app():
    return service_app(
        runtime_factory=bootstrap, title="Netværk notifications",
        description="Welcome emails and meeting invitations (with ICS) for members, from MEMBERS and MEETINGS "
                    "events. Publishes NOTIFICATIONS events (notifications.>) through an outbox.",
        routers=[api], domain_error=DomainError)


app = create_app()
