"""A unit of work for the handlers' unit tests: the real event collection (netvaerk_shared.uow), no database.

uow = FakeUnitOfWork(repositories=lambda _: FakeRepository(store), translate=to_contract, clock=lambda: NOW)
await handle(cmd, uow)
assert uow.committed and [type(e) for e in uow.published] == [contracts.MemberJoined]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from netvaerk_shared.contracts import EventData
from netvaerk_shared.uow import AbstractUnitOfWork, Clock, R, Translate, utc_now


class FakeUnitOfWork(AbstractUnitOfWork[R]):
    def __init__(self, *, repositories: Callable[[Any], R], translate: Translate, clock: Clock = utc_now) -> None:
        super().__init__(repositories=repositories, translate=translate, clock=clock)
        self.conn = object()  # what the repositories are built on
        self.entered = False
        self.committed = False
        self.rolled_back = False
        self.published: list[EventData] = []  # the contracts written to the outbox, in order
        self._writing: list[EventData] = []

    async def _begin(self) -> Any:
        self.entered = True
        self._writing = []
        return self.conn

    async def _write(self, events: list[EventData]) -> None:
        self._writing.extend(events)

    async def _commit(self, published: bool) -> None:
        self.published.extend(self._writing)
        self._writing = []
        self.committed = True

    async def _rollback(self, exc: BaseException) -> None:
        self._writing = []
        self.rolled_back = True
