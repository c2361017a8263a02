from alembic import context

from netvaerk_shared.migrate import run_env
from notifications.adapters.orm import metadata

run_env(context, metadata)
