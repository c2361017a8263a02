"""Builds our e-mails and hands them to an SMTP server without ever sending one twice after a crash.

`SmtpMailer.send` is a two-phase send: the whole message goes out inside DATA, but the final "." that makes the
server take it is written only after the caller's `before_commit_point()` has committed "sent" in its database.
Anything that fails before that point leaves a DATA without its terminator, which the server throws away when the
connection drops, so the caller can simply retry. What is left is the short window between the caller's commit and
the server's reply to the "."; there the message may be lost (at most once), but it is never delivered twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

import aiosmtplib
from aiosmtplib.email import extract_recipients, extract_sender, flatten_message
from aiosmtplib.protocol import SMTPProtocol
from aiosmtplib.response import SMTPResponse

from .safe_text import one_line

log = logging.getLogger(__name__)

MESSAGE_ID_DOMAIN = "netvaerk.danskit.example.org"
ICS_FILENAME = "invitation.ics"
# Longer display names are cut: a name without spaces cannot be folded, and RFC 5322 allows 998 octets a line.
MAX_DISPLAY_NAME = 200

# As aiosmtplib's protocol does for DATA (RFC 5321 4.5.2): every line ends in CRLF, a leading "." is doubled.
_LINE_ENDINGS = re.compile(rb"(?:\r\n|\n|\r(?!\n))")
_LEADING_DOT = re.compile(rb"(?m)^\.")
_BODY_FLUSH_POLL = 0.002  # seconds between checks that the body has left the transport's buffer


# ---------------------------------------------------------------------------------------------------------------------
# Building the message


def format_message_id(message_id: str) -> str:
    """'abc' -> '<abc@netvaerk.danskit.example.org>'; 'abc@host' -> '<abc@host>'; '<abc@host>' stays as it is."""
    message_id = message_id.strip()
    if message_id.startswith("<") and message_id.endswith(">"):
        return message_id
    if "@" in message_id:
        return f"<{message_id}>"
    return f"<{message_id}@{MESSAGE_ID_DOMAIN}>"


class _Verbatim(str):
    """A header value written as it is, on one line (up to RFC 5322's 998 octets): the email package would otherwise
    turn a URL longer than 78 characters into RFC 2047 encoded words, which no client reads as a URL
    (List-Unsubscribe). Only for ASCII values without spaces or control characters."""

    name: str

    def __new__(cls, name: str, value: str) -> _Verbatim:
        if not value.isascii() or any(c.isspace() for c in value) or len(name) + len(value) > 990:
            raise ValueError(f"{name}: not a value for one verbatim line")
        header = super().__new__(cls, value)
        header.name = name
        return header

    def fold(self, *, policy: object) -> str:
        return f"{self.name}: {self}{getattr(policy, 'linesep', chr(10))}"


class InvalidAddress(ValueError):
    """An address the email package cannot take as one addr-spec ("local@domain"): no message can be built for it."""


def make_address(addr_spec: str, display_name: str | None = None) -> Address:
    """One mailbox as the email package's own `Address` object, so it is quoted and encoded, never string-joined.

    The display name goes through `one_line` (control characters become a space; nothing left means no display
    name at all) and is cut to MAX_DISPLAY_NAME characters. `addr_spec` must be exactly one address; anything else
    raises `InvalidAddress`.
    """
    display_name = one_line(display_name)[:MAX_DISPLAY_NAME].rstrip()
    try:
        address = Address(display_name=display_name, addr_spec=addr_spec)
    except Exception as exc:  # ValueError, HeaderParseError, header defects, IndexError ('' or 'a@'), ...
        raise InvalidAddress(f"not a single e-mail address ({type(exc).__name__}: {exc})") from exc
    if not address.username or not address.domain:
        raise InvalidAddress("not a single e-mail address (local part or domain missing)")
    return address


def build_message(
    *,
    message_id: str,
    from_addr: str,
    from_name: str = "",
    to_addr: str,
    to_name: str,
    subject: str,
    text_body: str,
    ics: bytes | None,
    locale: str | None,
    date: datetime | None = None,
    html_body: str | None = None,
    ics_method: str = "REQUEST",
    ics_filename: str = ICS_FILENAME,
    headers: Mapping[str, str] | None = None,
) -> EmailMessage:
    """A UTF-8 e-mail; with `ics` it carries a meeting invitation that Outlook, Gmail and Apple Mail recognise.
    With `html_body` a text/html alternative follows the text/plain one; `ics_method` is the calendar parts'
    method (REQUEST, CANCEL); `headers` are added as they are, each cleaned with `one_line` (List-Unsubscribe).

    Layout with an invitation::

        multipart/mixed
          multipart/alternative
            text/plain; charset=utf-8                        (the text, quoted-printable)
            text/calendar; method=REQUEST; charset=UTF-8     (the invitation clients render with RSVP buttons)
          text/calendar; method=REQUEST; charset=UTF-8; name=invitation.ics   (the same, as an attachment)

    Every part is quoted-printable or base64 and the headers are RFC 2047-encoded, so the message is 7-bit clean and
    needs no 8BITMIME. `from_addr`/`to_addr` are bare addresses, `from_name`/`to_name` their display names.
    `message_id` is the caller's stable id for this delivery (see `format_message_id`).

    Header text may come from anyone (member names, group names, meeting titles): it is cleaned with `one_line`
    and handed to the email package as `Address` objects and header values, so no header can be split or added
    and a name can never make building fail. An address that is not one valid addr-spec raises `InvalidAddress`.
    """
    recipient = make_address(to_addr, to_name)
    sender = make_address(from_addr, from_name)
    message = EmailMessage()
    message["Message-ID"] = format_message_id(one_line(message_id))
    message["Date"] = format_datetime((date or datetime.now(UTC)).astimezone(UTC))
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = one_line(subject)
    for name, value in (headers or {}).items():
        message[one_line(name)] = _Verbatim(one_line(name), one_line(value))
    message.set_content(text_body, subtype="plain", charset="utf-8", cte="quoted-printable")
    if html_body is not None:
        message.add_alternative(html_body, subtype="html", charset="utf-8", cte="quoted-printable")
    if ics is not None:
        calendar_params = {"method": one_line(ics_method), "charset": "UTF-8"}
        message.add_alternative(ics, maintype="text", subtype="calendar", cte="base64", params=calendar_params)
        message.add_attachment(
            ics,
            maintype="text",
            subtype="calendar",
            cte="base64",
            filename=ics_filename,
            params={**calendar_params, "name": ics_filename},
        )
    locale = one_line(locale)
    if locale:
        # Set last: turning the message multipart moves every Content-* header down into the first part.
        message["Content-Language"] = locale
    return message


# ---------------------------------------------------------------------------------------------------------------------
# Errors


class SmtpError(Exception):
    """Base of the mailer's errors.

    `committed` is True when the error happened after `before_commit_point()` returned, i.e. the caller has already
    committed "sent": it must then record what really happened (see each subclass).
    """

    committed: bool = False


class SmtpTransient(SmtpError):
    """Not delivered, worth retrying later: server unreachable, connection lost, timeout, 4xx reply.

    With `committed=True` the connection broke before the final "." left us: not delivered, so the caller should put
    the delivery back to pending.
    """

    def __init__(self, message: str, *, code: int | None = None, committed: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.committed = committed


class SmtpRejected(SmtpError):
    """The server refused the message with `code`; `permanent` (5xx) means retrying will not help.

    Raised for 5xx replies to MAIL/RCPT/DATA (before the commit point, `committed=False`) and for any non-250 reply
    to the final "." (`committed=True`: the caller must undo its "sent").
    """

    def __init__(self, code: int, message: str, *, permanent: bool | None = None, committed: bool = False) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message
        self.permanent = code >= 500 if permanent is None else permanent
        self.committed = committed


class SmtpOutcomeUnknown(SmtpError):
    """The final "." was written but no reply came (connection lost, timeout): the server may or may not have the
    message. The caller's "sent" stands; resending could deliver it twice (RFC 1047)."""

    committed = True


def _refusal(code: int, text: str) -> SmtpError:
    if code >= 500:
        return SmtpRejected(code, text, permanent=True)
    return SmtpTransient(f"{code} {text}", code=code)


class _StaleConnection(Exception):
    """A reused connection turned out to be closed by the server before we sent anything that matters."""


def _data_payload(flat: bytes) -> tuple[bytes, int]:
    """(what goes between DATA's 354 and the terminator, RFC 1870 size of the message)."""
    normalized = _LINE_ENDINGS.sub(b"\r\n", flat)
    if not normalized.endswith(b"\r\n"):
        normalized += b"\r\n"
    return _LEADING_DOT.sub(b"..", normalized), len(normalized)


# ---------------------------------------------------------------------------------------------------------------------
# Sending


class SmtpMailer:
    """Sends messages one at a time over one reused SMTP connection (reconnecting when it breaks).

    Config mirrors the service's SMTP_* settings. `timeout` bounds connecting and each SMTP reply, including the
    reply to the final "." (RFC 5321 allows servers 10 minutes there; keep it generous in production).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 1025,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout: float = 60.0,
        local_hostname: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.username = username or None
        self.password = password
        self.starttls = starttls
        self.timeout = timeout
        self.local_hostname = local_hostname
        self.connections_opened = 0  # how often we had to (re)connect; handy for metrics and tests
        self._client: aiosmtplib.SMTP | None = None
        self._lock = asyncio.Lock()  # one SMTP transaction at a time on the one connection

    async def send(self, message: EmailMessage, *, before_commit_point: Callable[[], Awaitable[None]]) -> None:
        """Send `message` to its To/Cc/Bcc recipients; await `before_commit_point()` just before the final ".".

        Returns after the server accepted the message (250). Raises `SmtpTransient` / `SmtpRejected` /
        `SmtpOutcomeUnknown` (see their `committed`), or whatever `before_commit_point` raised, in which case
        nothing was delivered. Every recipient must be accepted, or nothing is sent.
        """
        sender = extract_sender(message)
        recipients = extract_recipients(message)
        if not sender or not recipients:
            raise ValueError("message needs a From and at least one To/Cc/Bcc address")
        async with self._lock:
            for _ in range(2):  # a stale reused connection gets one fresh retry; a fresh one is never "stale"
                reused = await self._connect_if_needed()
                try:
                    await self._transaction(message, sender, recipients, before_commit_point, reused=reused)
                    return
                except _StaleConnection:
                    self._drop()
                    log.info("smtp connection to %s:%s was closed by the server; reconnecting", self.host, self.port)
            raise SmtpTransient(f"smtp {self.host}:{self.port}: connection lost")

    async def close(self) -> None:
        """Say QUIT and close the connection (if any)."""
        client, self._client = self._client, None
        if client is None or not client.is_connected:
            return
        try:
            await client.quit(timeout=min(self.timeout, 5.0))
        except (TimeoutError, aiosmtplib.SMTPException, OSError):
            client.close()

    # -- connection ---------------------------------------------------------------------------------------------------

    async def _connect_if_needed(self) -> bool:
        """Make sure we have a live, EHLO'd connection. Returns True when an existing one is reused."""
        if self._client is not None and self._client.is_connected:
            return True
        self._drop()
        client = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            username=self.username,
            password=self.password,
            start_tls=self.starttls,
            timeout=self.timeout,
            local_hostname=self.local_hostname,
        )
        try:
            await client.connect()  # greeting, STARTTLS and AUTH as configured
            if client.is_ehlo_or_helo_needed:
                try:
                    await client.ehlo()
                except aiosmtplib.SMTPHeloError:
                    await client.helo()
        except BaseException as exc:
            client.close()
            # Failures of the connection itself (greeting, TLS, AUTH) are about the server or our settings, not about
            # this message: always transient.
            if isinstance(exc, aiosmtplib.SMTPResponseException):
                raise SmtpTransient(f"smtp {self.host}:{self.port}: {exc.code} {exc.message}", code=exc.code) from exc
            if isinstance(exc, (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError)):
                raise SmtpTransient(f"smtp {self.host}:{self.port}: {exc}") from exc
            raise
        self._client = client
        self.connections_opened += 1
        return False

    def _drop(self) -> None:
        """Forget the connection, cutting it at once (abort, not close: nothing buffered may still go out)."""
        client, self._client = self._client, None
        if client is None:
            return
        if isinstance(client.transport, asyncio.WriteTransport):
            client.transport.abort()
        client.close()

    async def _reset(self) -> None:
        """RSET after a refused MAIL/RCPT so the connection can carry the next message."""
        client = self._client
        if client is None:
            return
        try:
            await client.rset()
        except (TimeoutError, aiosmtplib.SMTPException, OSError):
            self._drop()

    # -- one mail transaction -----------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _smtp_errors(self) -> Iterator[None]:
        """Before the commit point: turn aiosmtplib and socket failures into our errors and drop the connection."""
        try:
            yield
        except aiosmtplib.SMTPResponseException as exc:
            self._drop()
            raise _refusal(exc.code, exc.message) from exc
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            self._drop()
            raise SmtpTransient(f"smtp {self.host}:{self.port}: {exc}") from exc

    async def _transaction(
        self,
        message: EmailMessage,
        sender: str,
        recipients: list[str],
        before_commit_point: Callable[[], Awaitable[None]],
        *,
        reused: bool,
    ) -> None:
        client = self._client
        assert client is not None
        utf8 = not (sender + "".join(recipients)).isascii()
        if utf8 and not client.supports_extension("smtputf8"):
            raise SmtpRejected(553, "non-ASCII address, and the server does not support SMTPUTF8", permanent=True)
        eight_bit = client.supports_extension("8bitmime")
        options = (["SMTPUTF8"] if utf8 else []) + (["BODY=8BITMIME"] if eight_bit else [])
        payload, size = _data_payload(flatten_message(message, utf8=utf8, cte_type="8bit" if eight_bit else "7bit"))
        if client.supports_extension("size"):
            options.insert(0, f"SIZE={size}")
        encoding = "utf-8" if utf8 else "ascii"

        try:
            with self._smtp_errors():
                try:
                    await client.mail(sender, options=options, encoding=encoding)
                except aiosmtplib.SMTPServerDisconnected:
                    if reused:  # the server timed the idle connection out; nothing was sent yet
                        raise _StaleConnection() from None
                    raise
                except aiosmtplib.SMTPSenderRefused as exc:
                    if reused and exc.code == 421:  # the same, announced ("421 4.4.2 timeout exceeded")
                        raise _StaleConnection() from None
                    await self._reset()
                    raise _refusal(exc.code, exc.message) from exc
                for recipient in recipients:
                    try:
                        await client.rcpt(recipient, encoding=encoding)
                    except aiosmtplib.SMTPRecipientRefused as exc:
                        await self._reset()
                        raise _refusal(exc.code, f"{recipient}: {exc.message}") from exc
            await self._data(client, payload, before_commit_point)
        except (SmtpError, _StaleConnection):
            raise
        except BaseException:
            # Cancelled, or before_commit_point failed: cut the connection so that a half-sent DATA is thrown away
            # (and a reply we stopped waiting for cannot be paired with the next command). Re-raised unchanged.
            self._drop()
            raise

    async def _data(
        self,
        client: aiosmtplib.SMTP,
        payload: bytes,
        before_commit_point: Callable[[], Awaitable[None]],
    ) -> None:
        # aiosmtplib's data() writes the body and the terminator in one go, so DATA is driven on its protocol object
        # directly: under the protocol's command lock, arming `_response_pending` before each write that expects a
        # reply, as SMTPProtocol.execute_data_command does.
        protocol = client.protocol
        command_lock = protocol._command_lock if protocol is not None else None
        if protocol is None or command_lock is None:
            raise SmtpTransient("connection lost before DATA")
        async with command_lock:
            with self._smtp_errors():
                start = await self._command(protocol, b"DATA\r\n")
                if start.code == 354:
                    await self._send_body(protocol, payload)
            if start.code == 354:
                await before_commit_point()
                # Straight on to the "." in this step of the event loop: on SQLite the commit point has committed
                # without letting the loop run, so anything that suspended here would reopen the window it closed.
                final = await self._finish(protocol)
        if start.code != 354:
            await self._reset()
            raise _refusal(start.code, start.message)
        if final.code != 250:
            raise SmtpRejected(final.code, final.message, committed=True)

    async def _command(self, protocol: SMTPProtocol, line: bytes) -> SMTPResponse:
        protocol._response_pending = True
        protocol.write(line)
        return await protocol.read_response(timeout=self.timeout)

    async def _send_body(self, protocol: SMTPProtocol, payload: bytes) -> None:
        """Phase one: the dot-stuffed message without its terminator, flushed to the socket.

        Flushing first leaves only three bytes to send after the caller's commit. `_response_pending` stays armed so
        that a reply the server sends early (an error, or 421 before it hangs up) is kept rather than discarded.
        """
        protocol._response_pending = True
        protocol.write(payload)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while True:
            transport = protocol.transport
            if transport is None or transport.is_closing():
                raise aiosmtplib.SMTPServerDisconnected("connection lost while writing the message")
            if _early_reply(protocol):
                early = await protocol.read_response(timeout=self.timeout)
                raise aiosmtplib.SMTPResponseException(early.code, early.message)
            if transport.get_write_buffer_size() == 0:  # type: ignore[attr-defined]
                return
            if loop.time() > deadline:
                raise aiosmtplib.SMTPTimeoutError("timed out writing the message")
            await asyncio.sleep(_BODY_FLUSH_POLL)

    async def _finish(self, protocol: SMTPProtocol) -> SMTPResponse:
        """Phase two, after the caller's commit: write the terminator and read the server's verdict."""
        if _early_reply(protocol):
            # The server spoke (or hung up) while the caller committed: the "." was never sent.
            self._drop()
            try:
                early = await protocol.read_response(timeout=self.timeout)
            except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
                raise SmtpTransient(f"connection lost before the final '.': {exc}", committed=True) from exc
            raise SmtpRejected(early.code, early.message, committed=True)
        try:
            protocol.write(b".\r\n")
        except aiosmtplib.SMTPServerDisconnected as exc:
            self._drop()
            raise SmtpTransient("connection lost before the final '.'", committed=True) from exc
        try:
            return await protocol.read_response(timeout=self.timeout)
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            self._drop()
            raise SmtpOutcomeUnknown(f"no reply to the final '.': {exc}") from exc


def _early_reply(protocol: SMTPProtocol) -> bool:
    """True when a reply (or the loss of the connection) arrived although we have not finished our command."""
    waiter = protocol._response_waiter
    return waiter is None or waiter.done()


_ENHANCED_STATUS = re.compile(r"(?<![\w.@])[245]\.\d{1,3}\.\d{1,3}(?![\w.@])")  # RFC 3463, e.g. 5.1.1


def smtp_reason(exc: SmtpError) -> str:
    """'smtp 550 5.1.1', 'smtp 451', 'smtp unreachable': the reply code (and RFC 3463 status), never the reply text,
    which may quote the address."""
    code = getattr(exc, "code", None)
    if code is None:
        return "smtp unreachable" if isinstance(exc, SmtpTransient) else f"smtp {type(exc).__name__}"
    enhanced = _ENHANCED_STATUS.search(getattr(exc, "message", None) or str(exc))
    return f"smtp {code}" + (f" {enhanced.group()}" if enhanced else "")


def refuses_address(exc: SmtpError) -> bool:
    """The server refused the recipient's address for good (before the commit point): an RFC 3463 status 5.1.x
    (bad address, no such mailbox, ...) or 5.2.1 (mailbox disabled); without one, 550, 551 or 553. A refusal for
    another reason (policy 5.7.x, message too large 5.3.4, a 5xx to the final ".") says nothing about the address."""
    if not isinstance(exc, SmtpRejected) or not exc.permanent or exc.committed:
        return False
    enhanced = _ENHANCED_STATUS.search(exc.message or "")
    if enhanced is not None:
        status = enhanced.group()
        return status.startswith("5.1.") or status == "5.2.1"
    return exc.code in (550, 551, 553)
