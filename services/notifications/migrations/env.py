from alembic import context

from notifications.adapters.orm import metadata
from netvaerk_shared.migrate import run_env

run_env(context, metadata)
