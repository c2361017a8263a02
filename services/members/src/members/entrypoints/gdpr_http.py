"""HTTP API for the GDPR rights of a member, across the platform: the export of everything every service holds
(Art. 15/20) and the erasure (Art. 17). The member themselves (through the web gateway) or the administration."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from netvaerk_shared.gdpr import ExportIncomplete, expected_services, gather_export
from netvaerk_shared.http import Caller, Problem, Runtime, UoW, problems, protected_router

from ..domain.gdpr import EraseMember
from ..service_layer.handlers import handle

router = protected_router()


class PlatformExport(BaseModel):
    member_id: UUID
    generated_at: datetime
    services: dict[str, dict[str, Any] | None] = Field(
        description="Each service's part, as its `GET /members/{id}/export` gives it; null: it holds nothing"
    )


class ErasureOut(BaseModel):
    member_id: UUID
    erased_at: datetime
    detail: str


@router.get(
    "/members/{member_id}/gdpr-export",
    tags=["gdpr"],
    summary="GDPR: everything the platform holds about a member, from every service, as one document",
    description=(
        "Gathered over NATS from every service in `GDPR_EXPORT_SERVICES`. When one does not answer in time the "
        "request fails with 504 naming it (503 when one cannot answer, or NATS is away): never a partial export."
    ),
    response_model=PlatformExport,
    responses=problems(403, 404, 503, 504),
)
async def platform_export(member_id: UUID, runtime: Runtime, caller: Caller) -> dict[str, Any]:
    caller.require_self_or_admin(member_id)
    nc = runtime.nc
    if nc is None or not nc.is_connected:
        raise Problem(503, "The export cannot be gathered now: NATS is not reachable.", retry_after=5)
    settings = runtime.settings
    services = expected_services(settings.gdpr_export_services)
    try:
        parts = await gather_export(nc, member_id, services, timeout=settings.gdpr_export_timeout_seconds)
    except ExportIncomplete as incomplete:
        if incomplete.silent:
            raise Problem(
                504,
                f"The export is incomplete, so none is given: no answer from {', '.join(incomplete.silent)} "
                f"within {settings.gdpr_export_timeout_seconds:g} s. Try again when every service runs.",
                silent_services=incomplete.silent,
                failed_services=incomplete.failed,
            ) from None
        raise Problem(
            503,
            f"The export is incomplete, so none is given: {incomplete}.",
            failed_services=incomplete.failed,
            retry_after=5,
        ) from None
    if all(part is None for part in parts.values()):
        raise Problem(404, f"The platform holds nothing about member {member_id}.")
    return {"member_id": member_id, "generated_at": datetime.now(UTC), "services": parts}


@router.post(
    "/members/{member_id}/erasure",
    status_code=202,
    tags=["gdpr"],
    summary="GDPR: erase a member's personal data in every service",
    description=(
        "Deletes the member here at once and publishes `dk.danskit.member.erased.v1` (ids only); every other "
        "service erases what it holds within seconds of it, and the member's earlier events are purged from the "
        "MEMBERS stream. Idempotent: for a member erased already it answers 202 again with the original "
        "`erased_at` and publishes nothing (members keeps the ids and times of erasures, nothing else, as their "
        "proof). 404 when there never was such a member."
    ),
    response_model=ErasureOut,
    responses=problems(403, 404),
)
async def erase(member_id: UUID, uow: UoW, caller: Caller) -> dict[str, Any]:
    caller.require_self_or_admin(member_id)
    erasure = await handle(EraseMember(member_id=member_id), uow)
    if erasure.repeated:
        detail = "Erased already, at erased_at; nothing more to do, and no second notice."
    else:
        detail = "Erased here; the other services erase on the notice dk.danskit.member.erased.v1."
    return {"member_id": erasure.member_id, "erased_at": erasure.erased_at, "detail": detail}
