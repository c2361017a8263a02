"""Domain errors: each carries the HTTP status it maps to and a human message (the problem's title is the
status phrase)."""


class DomainError(Exception):
    status = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Forbidden(DomainError):
    """The caller may not do this (a member acting for someone else, a member who coordinates no such group)."""

    status = 403


class NotFound(DomainError):
    status = 404


class Conflict(DomainError):
    status = 409


class Invalid(DomainError):
    status = 422
