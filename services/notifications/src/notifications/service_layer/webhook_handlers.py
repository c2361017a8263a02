"""Handlers of the webhook commands (domain/webhook_commands.py), in HANDLERS; handlers.py takes them into its own
table, so `handle(cmd, uow)` stays the one way in."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from ..domain import webhook_commands as commands
from ..domain.errors import LeaseLost, NotFound
from ..domain.webhooks import Webhook, WebhookDelivery, check_url, retry_delay
from .unit_of_work import UnitOfWork


async def register_webhook(cmd: commands.RegisterWebhook, uow: UnitOfWork) -> Webhook:
    url = check_url(cmd.url, environment=cmd.environment)  # BadWebhookUrl: 422
    async with uow:
        webhook = Webhook(
            id=cmd.webhook_id,
            name=cmd.name,
            url=url,
            secret=cmd.secret,
            created_at=uow.clock(),
            kinds=tuple(dict.fromkeys(cmd.kinds)) if cmd.kinds is not None else None,
            organisation_id=cmd.organisation_id,
        )
        await uow.repo.webhooks.add(webhook)
        await uow.commit()
    return webhook


async def rotate_webhook_secret(cmd: commands.RotateWebhookSecret, uow: UnitOfWork) -> Webhook:
    """A new secret; the previous one goes on signing for the grace period, so every delivery meanwhile carries
    both signatures and the receiver can switch without losing a message."""
    async with uow:
        webhook = await uow.repo.webhooks.get(cmd.webhook_id)
        if webhook is None:
            raise NotFound(f"No webhook {cmd.webhook_id}.")
        webhook = webhook.rotated(cmd.secret, uow.clock(), timedelta(seconds=cmd.grace_seconds))
        await uow.repo.webhooks.save(webhook)
        await uow.commit()
    return webhook


async def delete_webhook(cmd: commands.DeleteWebhook, uow: UnitOfWork) -> None:
    async with uow:
        if not await uow.repo.webhooks.remove(cmd.webhook_id):
            raise NotFound(f"No webhook {cmd.webhook_id}.")
        await uow.commit()


async def retry_webhook_delivery(cmd: commands.RetryWebhookDelivery, uow: UnitOfWork) -> None:
    async with uow:
        delivery = await uow.repo.webhooks.delivery(cmd.delivery_id)
        if delivery is None or delivery.webhook_id != cmd.webhook_id:
            raise NotFound(f"No delivery {cmd.delivery_id} of webhook {cmd.webhook_id}.")
        delivery.retry(uow.clock())  # NotFailed: 409
        await uow.repo.webhooks.save_delivery(delivery)
        await uow.commit()


# -- the webhook worker's ---------------------------------------------------------------------------------------
async def lease_webhook_deliveries(
    cmd: commands.LeaseWebhookDeliveries, uow: UnitOfWork
) -> list[tuple[WebhookDelivery, Webhook]]:
    """Due deliveries this worker now holds for one attempt each, with their subscriber; never more of one
    subscriber in flight than `per_webhook`, so a slow one cannot take every slot."""
    room = {webhook_id: cmd.per_webhook - count for webhook_id, count in cmd.in_flight}
    async with uow:
        now = uow.clock()
        full = [webhook_id for webhook_id, left in room.items() if left <= 0]
        candidates = await uow.repo.webhooks.due(now, max(cmd.limit * 4, cmd.limit), full)
        subscribers = {w.id: w for w in await uow.repo.webhooks.all()} if candidates else {}
        leased: list[tuple[WebhookDelivery, Webhook]] = []
        for delivery in candidates:
            webhook = subscribers.get(delivery.webhook_id)
            if webhook is None or len(leased) >= cmd.limit:
                continue
            if room.setdefault(delivery.webhook_id, cmd.per_webhook) <= 0:
                continue
            room[delivery.webhook_id] -= 1
            delivery.lease(cmd.owner, now, now + timedelta(seconds=cmd.lease_seconds))
            leased.append((delivery, webhook))
        await uow.repo.webhooks.save_leases([d for d, _ in leased])
        await uow.commit()
    return leased


async def release_webhook_deliveries(cmd: commands.ReleaseWebhookDeliveries, uow: UnitOfWork) -> None:
    async with uow:
        for delivery_id in cmd.delivery_ids:
            delivery = await uow.repo.webhooks.delivery(delivery_id)
            if delivery is not None and delivery.release(cmd.owner):
                await uow.repo.webhooks.save_delivery(delivery)
        await uow.commit()


async def record_webhook_attempt(cmd: commands.RecordWebhookAttempt, uow: UnitOfWork) -> WebhookDelivery:
    """Delivered, retried after a backoff, or parked failed. LeaseLost when it is not ours any more."""
    async with uow:
        delivery = await uow.repo.webhooks.delivery(cmd.delivery_id)
        if delivery is None:
            raise LeaseLost(f"webhook delivery {cmd.delivery_id} is gone")
        now = uow.clock()
        if cmd.error is None and cmd.status is not None:
            delivery.delivered(cmd.owner, now, cmd.status)
        else:
            delay = retry_delay(
                delivery.attempts + 1, base=cmd.backoff_base_seconds, cap=cmd.backoff_max_seconds, jitter=cmd.jitter
            )
            delivery.attempt_failed(
                cmd.owner, now, status=cmd.status, error=cmd.error or "", max_attempts=cmd.max_attempts, delay=delay
            )
        await uow.repo.webhooks.save_delivery(delivery)
        await uow.commit()
    return delivery


HANDLERS: dict[type, Callable[[Any, UnitOfWork], Awaitable[Any]]] = {
    commands.RegisterWebhook: register_webhook,
    commands.RotateWebhookSecret: rotate_webhook_secret,
    commands.DeleteWebhook: delete_webhook,
    commands.RetryWebhookDelivery: retry_webhook_delivery,
    commands.LeaseWebhookDeliveries: lease_webhook_deliveries,
    commands.ReleaseWebhookDeliveries: release_webhook_deliveries,
    commands.RecordWebhookAttempt: record_webhook_attempt,
}
