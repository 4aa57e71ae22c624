"""Domain errors. Services raise these; one Flask error handler maps them to HTTP."""

from __future__ import annotations


class DomainError(Exception):
    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationFailed(DomainError):
    status_code = 422


class NotFound(DomainError):
    status_code = 404


class Conflict(DomainError):
    status_code = 409


class Forbidden(DomainError):
    status_code = 403


class IllegalTransition(Conflict):
    """A state machine was asked to make a move it does not allow."""
