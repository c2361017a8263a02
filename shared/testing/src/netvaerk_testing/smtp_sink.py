"""A development SMTP server that keeps every message it accepts in a Maildir, for local runs and tests.

    python -m netvaerk_testing.smtp_sink --host 127.0.0.1 --port 1025 --maildir var/mail

A message is stored only once its DATA ended with the final "." and the handler ran: aiosmtpd cancels a DATA whose
connection drops before that, so a half-sent message never shows up (the notifications mailer relies on this).
Each stored message gets three headers on top: X-Netvaerk-Received-At (UTC, ISO 8601), X-Netvaerk-Mail-From and
X-Netvaerk-Rcpt-To (the SMTP envelope, which may differ from From/To).
"""

from __future__ import annotations

import argparse
import logging
import mailbox
import os
import signal
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

log = logging.getLogger(__name__)

RECEIVED_AT_HEADER = "X-Netvaerk-Received-At"
MAIL_FROM_HEADER = "X-Netvaerk-Mail-From"
RCPT_TO_HEADER = "X-Netvaerk-Rcpt-To"
SERVER_HOSTNAME = "netvaerk-smtp-sink"


def open_maildir(path: str | os.PathLike[str]) -> mailbox.Maildir:
    """The Maildir at `path`, created with its parent folders when missing."""
    # mailbox.Maildir(create=True) makes tmp/new/cur only when the folder itself is new: make them in any case
    for sub in ("tmp", "new", "cur"):
        (Path(path) / sub).mkdir(parents=True, exist_ok=True)
    return mailbox.Maildir(path, create=True)


class MaildirSink:
    """aiosmtpd handler: accepts every message and adds it, as received, to a Maildir."""

    def __init__(self, maildir_path: str | os.PathLike[str]) -> None:
        self.maildir_path = Path(maildir_path)
        self.maildir = open_maildir(maildir_path)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        # original_content is the message exactly as sent (dot-unstuffed, CRLF); prepend our headers and store the
        # bytes untouched rather than re-serialising them through the email package.
        content: bytes = envelope.original_content
        received_at = datetime.now(UTC).isoformat(timespec="microseconds")
        extra = (
            f"{RECEIVED_AT_HEADER}: {received_at}\r\n"
            f"{MAIL_FROM_HEADER}: {envelope.mail_from}\r\n"
            f"{RCPT_TO_HEADER}: {', '.join(envelope.rcpt_tos)}\r\n"
        ).encode()
        key = self.maildir.add(extra + content)  # written to tmp/ and renamed into new/: readers never see half a file
        log.info("stored message %s from %s to %s", key, envelope.mail_from, envelope.rcpt_tos)
        return f"250 OK stored as {key}"


def start_sink(host: str, port: int, maildir_path: str | os.PathLike[str]) -> Controller:
    """Start the sink in a background thread; call `.stop()` on the returned controller to end it."""
    controller = Controller(
        MaildirSink(maildir_path),
        hostname=host,
        port=port,
        server_hostname=SERVER_HOSTNAME,  # spares aiosmtpd a getfqdn() look-up
    )
    controller.start()
    return controller


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m netvaerk_testing.smtp_sink",
        description="Development SMTP server that stores every message it accepts in a Maildir.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--maildir", default="var/mail", help="Maildir to store messages in (created if missing)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    controller = start_sink(args.host, args.port, args.maildir)
    log.info("smtp sink listening on %s:%s, storing into %s", args.host, args.port, os.path.abspath(args.maildir))
    try:
        stop.wait()
    finally:
        controller.stop()
        log.info("smtp sink stopped")


if __name__ == "__main__":
    main()
