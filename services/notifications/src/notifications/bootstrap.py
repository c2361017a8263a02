"""The composition root: engine, messaging runtime (repository, translator, subscriptions), the delivery worker and
its mailer, the reminder worker, and the delivery gauges, built when called, never at import."""

from __future__ import annotations

from pathlib import Path

from netvaerk_shared import contracts
from netvaerk_shared.consumer import Subscription
from netvaerk_shared.contracts import meetings as plan
from netvaerk_shared.contracts.members import MemberErased
from netvaerk_shared.db import create_engine
from netvaerk_shared.gdpr import ExportResponder
from netvaerk_shared.runtime import ServiceRuntime
from netvaerk_shared.uow import Clock, utc_now

from .adapters import orm
from .adapters.mailer import SmtpMailer
from .adapters.repository import Repository
from .adapters.webhook_repository import outbox_tap
from .config import Settings
from .entrypoints import subscribers
from .entrypoints.reminders import ReminderWorker
from .entrypoints.webhook_worker import WebhookWorker
from .entrypoints.worker import DeliveryWorker, Mailer
from .service_layer.translator import to_contract
from .views import member_export, refresh_delivery_gauges, refresh_webhook_gauges

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def bootstrap(
    settings: Settings | None = None, mailer: Mailer | None = None, clock: Clock | None = None
) -> ServiceRuntime:
    """`clock`: what "now" is for the units of work and workers (tests move it ahead to make reminders due)."""
    settings = settings or Settings()
    engine = create_engine(settings.database_url)
    migrations = Path(settings.migrations_dir) if settings.migrations_dir else MIGRATIONS
    subscriptions = (
        Subscription(contracts.GroupCreated, subscribers.on_group_created),
        Subscription(contracts.MemberRegistered, subscribers.on_member_registered, subscribers.on_members_registered),
        Subscription(contracts.MemberUpdated, subscribers.on_member_updated, subscribers.on_members_updated),
        Subscription(contracts.MemberJoined, subscribers.on_member_joined, subscribers.on_members_joined),
        Subscription(contracts.MemberLeft, subscribers.on_member_left),
        Subscription(contracts.MemberRoleChanged, subscribers.on_member_role_changed),
        Subscription(contracts.MeetingScheduled, subscribers.on_meeting_scheduled),
        Subscription(plan.MeetingRescheduled, subscribers.on_meeting_rescheduled),
        Subscription(plan.MeetingCancelled, subscribers.on_meeting_cancelled),
        Subscription(plan.AgendaUpdated, subscribers.on_agenda_updated(settings.agenda_update_window_seconds)),
        Subscription(plan.RsvpRecorded, subscribers.on_rsvp_recorded),
        Subscription(plan.WaitlistPromoted, subscribers.on_waitlist_promoted),
        Subscription(plan.ProposalAccepted, subscribers.on_proposal_accepted),
        Subscription(MemberErased, subscribers.on_member_erased),
    )
    runtime = ServiceRuntime(
        service="notifications",
        settings=settings,
        engine=engine,
        tables=orm.messaging,
        repositories=Repository,
        translate=to_contract,
        subscriptions=subscriptions,
        migrations_dir=migrations,
        clock=clock or utc_now,
        outbox_tap=outbox_tap(clock or utc_now),  # webhook deliveries, with their NotificationSent/Failed
    )
    if settings.run_deliveries:
        mailer = mailer or SmtpMailer(
            host=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_user,
            password=settings.smtp_password,
            starttls=settings.smtp_starttls,
            timeout=settings.smtp_timeout,
        )
        runtime.add_worker(DeliveryWorker(runtime, settings, mailer))
    if settings.run_webhooks:
        runtime.add_worker(WebhookWorker(runtime, settings))
    if settings.run_reminders:
        runtime.add_worker(ReminderWorker(runtime, settings))
    runtime.add_gauges(lambda: refresh_delivery_gauges(engine))
    runtime.add_gauges(lambda: refresh_webhook_gauges(engine))
    runtime.add_worker(ExportResponder(runtime, member_export))  # its part of a GDPR export, over NATS
    return runtime
