"""A service process with a fault planted in it, for the end-to-end fault tests only:

    python -m netvaerk_testing.faulty_service --fault relay-exit-after-publish members.entrypoints.http:app --port 8001

plants the fault through the runtime's one test-only seam (`ServiceRuntime.relay_fault_hook`), then runs uvicorn in
this process with the remaining arguments, as `python -m uvicorn ...` would. Production code never plants one: the
services' images do not even have this package.

Faults:
    relay-exit-after-publish   the process exits with 137 (as if killed by SIGKILL) once a relay batch is published
                               and before the relay marks it in the outbox: the worst moment for a relay to die.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable, Sequence

log = logging.getLogger(__name__)


def _exit_after_publish(point: str) -> None:
    if point == "after_publish":
        log.error("fault relay-exit-after-publish: exiting between publish and mark")
        os._exit(137)


FAULTS: dict[str, Callable[[str], None]] = {"relay-exit-after-publish": _exit_after_publish}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m netvaerk_testing.faulty_service",
        description="Run a service under uvicorn with a fault planted (end-to-end tests only). "
        "Every argument but --fault goes to uvicorn.",
        allow_abbrev=False,
    )
    parser.add_argument("--fault", required=True, choices=sorted(FAULTS))
    args, uvicorn_args = parser.parse_known_args(argv)

    import uvicorn

    from netvaerk_shared.runtime import ServiceRuntime

    ServiceRuntime.relay_fault_hook = FAULTS[args.fault]
    uvicorn.main.main(args=uvicorn_args, prog_name="uvicorn")  # exits with uvicorn's status


if __name__ == "__main__":
    main()
