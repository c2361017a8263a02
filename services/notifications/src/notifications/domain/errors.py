"""Domain errors: each carries the HTTP status it maps to and a human message (the problem's title is the
status phrase). `LeaseLost` is the delivery worker's: it never reaches HTTP."""


class DomainError(Exception):
    status = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(DomainError):
    status = 404


class Forbidden(DomainError):
    """Only the administration, or a coordinator of the group, may do this."""

    status = 403


class NotFailed(DomainError):
    """Only a failed delivery can be retried: a pending one will go anyway, a sent one must never go twice."""

    status = 409


class TooMany(DomainError):
    """Too many of a kind of message for one member within a while; `retry_after`: seconds until one may go."""

    status = 429

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class LeaseLost(Exception):
    """This delivery is not (or no longer) ours to move on: another instance took it over when our lease ran out,
    or it is not pending any more. Send nothing, change nothing."""


class NotReady(Exception):
    """What a message needs (the member's contact, the group, the meeting) has not arrived from the other services
    yet: wait for it. `missing` names which ("contact", "group", "meeting"), without personal data."""

    def __init__(self, missing: str, detail: str) -> None:
        super().__init__(detail)
        self.missing = missing


class Suppressed(Exception):
    """A message that must not go, by rule (the member turned its kind off; the meeting was cancelled meanwhile):
    the delivery ends `skipped` with this reason."""
