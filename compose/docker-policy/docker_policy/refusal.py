"""The one exception every check raises: an HTTP status and a message that says what was refused and why."""

from __future__ import annotations

from http import HTTPStatus


class Refused(Exception):
    """A request the gateway will not forward. The message reaches the client (docker-py's APIError)."""

    def __init__(self, message: str, status: HTTPStatus = HTTPStatus.FORBIDDEN) -> None:
        super().__init__(message)
        self.status = status
