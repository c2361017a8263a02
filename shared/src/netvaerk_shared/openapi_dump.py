"""Write or check each service's checked-in OpenAPI document (services/<svc>/openapi.json).

    python -m netvaerk_shared.openapi_dump            # check: exit 1 and name the stale files
    python -m netvaerk_shared.openapi_dump --write    # regenerate them
    python -m netvaerk_shared.openapi_dump --write members   # only some services

The document comes from `create_app().openapi()` (every route is in place without starting the app), so writing it
needs neither a database nor NATS.
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
from pathlib import Path
from typing import Any

SERVICES = ("members", "meetings", "notifications", "gateway")
REGENERATE = "python -m netvaerk_shared.openapi_dump --write"


def document(service: str) -> dict[str, Any]:
    module = importlib.import_module(f"{service}.entrypoints.http")
    return module.create_app().openapi()


def render(service: str) -> str:
    return json.dumps(document(service), indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def path_for(service: str) -> Path:
    """services/<svc>/openapi.json, beside the service's pyproject (src/<svc>/entrypoints/http.py → 3 up)."""
    module = importlib.import_module(f"{service}.entrypoints.http")
    return Path(inspect.getfile(module)).resolve().parents[3] / "openapi.json"


def main(argv: list[str]) -> int:
    write = "--write" in argv
    services = [a for a in argv if not a.startswith("-")] or list(SERVICES)
    stale = []
    for service in services:
        path, text = path_for(service), render(service)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(str(path))
            if write:
                path.write_text(text, encoding="utf-8")
    if stale and not write:
        print(f"OpenAPI documents out of date (run {REGENERATE}): " + ", ".join(stale), file=sys.stderr)
        return 1
    print(("wrote " + ", ".join(stale)) if stale else ("up to date: " + ", ".join(services)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
