"""The notification kinds as the HTTP API names them (contracts.notifications.NotificationKind, as a Literal so the
OpenAPI document lists them inline): one list for the delivery log's and the webhooks' routes."""

from typing import Literal

Kind = Literal[
    "welcome",
    "invitation",
    "meeting_update",
    "cancellation",
    "agenda_update",
    "rsvp_confirmation",
    "waitlist_promotion",
    "proposal_accepted",
    "reminder",
    "nudge",
]
