"""FastAPI dependencies shared by the services' routes: the bearer token (declared, so the OpenAPI document has the
security scheme), the runtime (`Runtime`) and a fresh unit of work for the request (`UoW`), as
`Annotated[..., Depends()]` aliases."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .edge import token_matches
from .problems import Problem
from .runtime import ServiceRuntime  # imported, not only for type checking: FastAPI resolves these annotations
from .uow import UnitOfWork

_bearer = HTTPBearer(
    auto_error=False, scheme_name="bearer", description="The API token (API_TOKEN) as `Authorization: Bearer <token>`."
)


async def require_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]
) -> None:
    """Checked by the edge middleware already, before the body is read; here again so that no route depends on the
    middleware being in place, and so that the OpenAPI document declares the security scheme."""
    if not token_matches(request.headers.get("authorization", ""), request.app.state.edge.token):
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
