from alembic import context

from gateway.adapters.store import metadata
from netvaerk_shared.migrate import run_env

run_env(context, metadata)
