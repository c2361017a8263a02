"""The notification kinds as the HTTP API names them (contracts.notifications.NotificationKind, as a Literal so the
OpenAPI document lists them inline): one list for the delivery log's and the webhooks' routes.

`AnnouncedKind`: the kinds NOTIFICATIONS events (and so the webhooks) carry, those of the v1 contract. `Kind`: every
kind a delivery may be, those and the ones the contract does not name yet (domain.model.UNANNOUNCED: `sign_in`)."""

from typing import Literal

AnnouncedKind = Literal[
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
Kind = Literal[AnnouncedKind, "sign_in"]
