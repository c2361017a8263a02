"""FastAPI dependencies shared by the services' routes: the bearer token (declared, so the OpenAPI document has the
security scheme), the runtime (`Runtime`), a fresh unit of work for the request (`UoW`) and who is asking
(`Caller`), as `Annotated[..., Depends()]` aliases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .edge import SIGNED_CALLER, token_matches
from .problems import Problem
from .runtime import ServiceRuntime  # imported, not only for type checking: FastAPI resolves these annotations
from .uow import UnitOfWork

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description=(
        "`Authorization: Bearer <token>`: the API token (API_TOKEN), or a short-lived token the web gateway signed for "
        "this service (`nvk1.…`, see the README)"
    ),
)


async def require_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]
) -> None:
    """Checked by the edge middleware already, before the body is read; here again so that no route depends on the
    middleware being in place, and so that the OpenAPI document declares the security scheme."""
    if getattr(request.state, SIGNED_CALLER, None) is None and not token_matches(
        request.headers.get("authorization", ""), request.app.state.edge.token
    ):
        raise Problem(401, "A valid bearer token is required.", headers={"WWW-Authenticate": "Bearer"})


def protected_router(**kwargs: Any) -> APIRouter:
    """A router whose every operation needs the bearer token."""
    return APIRouter(dependencies=[Depends(require_token)], **kwargs)


async def get_runtime(request: Request) -> ServiceRuntime:  # async: a sync one would cost a thread hop per request
    return request.app.state.runtime


Runtime = Annotated[ServiceRuntime, Depends(get_runtime)]


async def get_uow(runtime: Runtime) -> UnitOfWork:
    return runtime.uow()


UoW = Annotated[UnitOfWork, Depends(get_uow)]


ACTING_MEMBER_HEADER = "X-Netvaerk-Member"


@dataclass(frozen=True)
class Principal:
    """Who is asking. The web gateway calls with a short-lived token it signed for this service (service_tokens):
    the member the token names is the caller, with that member's rights only; a token naming no member is the
    administration. Operators and back-office systems hold the API token: without the `X-Netvaerk-Member` header
    they are the administration, with it they act for that member."""

    member_id: UUID | None = None

    @property
    def is_admin(self) -> bool:
        return self.member_id is None

    def require_admin(self) -> None:
        if not self.is_admin:
            raise Problem(403, "Only the association's administration may do this.")

    def require_self_or_admin(self, member_id: UUID) -> None:
        """A member may act on their own record; the administration on anyone's."""
        if not self.is_admin and self.member_id != member_id:
            raise Problem(403, "A member may only do this for themselves.")


# Absent means the administration; the document says "a UUID, optional" (not "a UUID or null": a header cannot be
# null, and a client that read `null` there would send the string "null").
_NO_HEADER: Any = None


async def get_principal(
    request: Request,
    acting_member: Annotated[
        UUID,
        Header(
            alias=ACTING_MEMBER_HEADER,
            description="The member the caller acts for (set by the web gateway). Without it: the administration.",
        ),
    ] = _NO_HEADER,
) -> Principal:
    signed = getattr(request.state, SIGNED_CALLER, None)
    if signed is not None:  # the gateway's token names the caller; a header cannot change whom it acts for
        return Principal(member_id=signed.member_id)
    return Principal(member_id=acting_member)


Caller = Annotated[Principal, Depends(get_principal)]
