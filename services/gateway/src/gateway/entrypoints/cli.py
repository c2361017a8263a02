"""The gateway's operator commands.

    python -m gateway.entrypoints.cli add-admin EMAIL    make the member with that address an administrator

The first administrator can only come from here (the pages let administrators do administration, not make
themselves). Reads the same environment as the gateway (DATABASE_URL, MEMBERS_URL, GATEWAY_TOKEN_KEY)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from uuid import UUID

from ..adapters.services import Refused, Unavailable
from ..bootstrap import bootstrap
from .pages import member_with_address, normalised_email


async def add_admin(address: str) -> int:
    email = normalised_email(address)
    if email is None:
        print(f"not an email address: {address!r}", file=sys.stderr)
        return 2
    gw = await bootstrap()
    try:
        hit = await member_with_address(gw.services, email)
        if hit is None:
            print(f"no member has the address {email}: register them first (POST /members)", file=sys.stderr)
            return 1
        added = await gw.store.add_admin(UUID(hit["member_id"]), gw.clock())
        print(f"{hit['name']} <{email}> {'is now' if added else 'was already'} an administrator")
        return 0
    except (Unavailable, Refused) as exc:
        print(f"the members service did not help: {exc}", file=sys.stderr)
        return 1
    finally:
        await gw.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.entrypoints.cli")
    sub = parser.add_subparsers(dest="command", required=True)
    admin = sub.add_parser("add-admin", help="make the member with this address an administrator")
    admin.add_argument("email")
    args = parser.parse_args(argv)
    return asyncio.run(add_admin(args.email))


if __name__ == "__main__":
    sys.exit(main())
