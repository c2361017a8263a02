"""The gateway's ASGI app under the name every service's has (`<service>.entrypoints.http:app`), for uvicorn."""

from ..app import app, create_app

__all__ = ["app", "create_app"]
