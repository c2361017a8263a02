"""The reminder worker: turns the reminders and nudges that are due (stored rows, planned when a meeting is
scheduled or moved: they survive a restart) into deliveries, and wakes the delivery worker to send them.

Each pass is one transaction (`SendDueReminders`): the reminder is marked done together with the deliveries it
owes, and each delivery has its own unique key, so a reminder is owed at most once however often the pass runs, on
however many instances (on PostgreSQL the due rows are locked, SKIP LOCKED)."""

from __future__ import annotations

import asyncio
import logging

from netvaerk_shared.runtime import ServiceRuntime

from ..config import Settings
from ..domain import commands
from ..service_layer.handlers import handle

log = logging.getLogger(__name__)


class ReminderWorker:
    """The runtime's Worker named "reminders": looks for due reminders every REMINDER_POLL_SECONDS."""

    name = "reminders"

    def __init__(self, runtime: ServiceRuntime, settings: Settings) -> None:
        self.runtime = runtime
        self.settings = settings
        self._wake = asyncio.Event()
        self.owed = 0

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._wake.clear()
            try:
                handled = await self.run_once()
            except Exception:
                log.exception("reminder worker: pass failed; retrying")
                handled = 0
            if handled:
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), self.settings.reminder_poll_seconds)
            except TimeoutError:
                pass

    async def run_once(self) -> int:
        """One pass over the reminders due now; returns how many were handled (0: none was due)."""
        handled, owed = await handle(commands.SendDueReminders(self.settings.reminder_batch_size), self.runtime.uow())
        if owed:
            self.owed += owed
            log.info("reminders: %d deliveries owed", owed)
            deliveries = self.runtime.workers.get("deliveries")
            if deliveries is not None:
                deliveries.wake()
        return int(handled)
