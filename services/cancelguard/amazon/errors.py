"""What can go wrong talking to Amazon, as types a caller can act on.

Every message names the operation and what Amazon said; none carries a credential or a token.
"""

from __future__ import annotations

from typing import ClassVar


class AmazonError(Exception):
    """Base of every error the SP-API client raises."""


class LwaAuthError(AmazonError):
    """Login with Amazon refused the credentials (a 4xx with Amazon's `error`/`error_description`).

    Not retried: the same request will be refused again until someone fixes the configuration."""

    _HINTS: ClassVar[dict[str, str]] = {
        "invalid_client": "the client id or client secret is wrong: check the app's LWA credentials",
        "invalid_grant": "the refresh token is invalid, expired or revoked: the seller must authorise the "
        "app again and the new refresh token be configured",
        "unauthorized_client": "this app may not use the refresh-token grant: check the app's registration",
        "invalid_request": "the token request is malformed: a credential is probably empty",
        "unsupported_grant_type": "the token request used a grant type Amazon does not accept",
    }

    def __init__(self, endpoint: str, status: int, error: str, description: str) -> None:
        self.endpoint = endpoint
        self.status = status
        self.error = error
        self.description = description
        hint = self._HINTS.get(error, "check the seller account's LWA credentials")
        super().__init__(
            f"Login with Amazon at {endpoint} refused the credentials (HTTP {status}, {error}: "
            f"{description}): {hint}"
        )


class TokenEndpointUnavailable(AmazonError):
    """The LWA token endpoint did not answer usefully after bounded retries (or is cooling down)."""

    def __init__(self, endpoint: str, attempts: int, last_error: str, *, cooling_down: bool = False) -> None:
        self.endpoint = endpoint
        self.attempts = attempts
        self.last_error = last_error
        self.cooling_down = cooling_down
        wait = " (not retrying yet: still cooling down after the last failure)" if cooling_down else ""
        super().__init__(
            f"Login with Amazon at {endpoint} is unreachable after {attempts} attempts: {last_error}{wait}"
        )


class SpApiError(AmazonError):
    """Amazon answered an operation with a non-retryable error, in its `{"errors": [...]}` shape."""

    def __init__(
        self,
        operation: str,
        status: int,
        code: str,
        message: str,
        details: str = "",
        request_id: str = "",
    ) -> None:
        self.operation = operation
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.request_id = request_id
        text = f"{operation}: HTTP {status} {code}: {message}"
        if details:
            text += f" ({details})"
        if request_id:
            text += f" [x-amzn-RequestId {request_id}]"
        super().__init__(text)


class SpApiUnavailable(AmazonError):
    """Retryable failures (429, 5xx, connection errors) went on past the retry budget."""

    def __init__(self, operation: str, attempts: int, last_error: str) -> None:
        self.operation = operation
        self.attempts = attempts
        self.last_error = last_error
        super().__init__(f"{operation}: gave up after {attempts} attempts; last: {last_error}")


class MalformedResponse(AmazonError):
    """Amazon's answer does not have the shape its model promises. `path` is a JSON path (`$.payload...`)."""

    def __init__(self, operation: str, path: str, problem: str) -> None:
        self.operation = operation
        self.path = path
        self.problem = problem
        super().__init__(f"{operation}: malformed response at {path}: {problem}")


class ProcessingFailed(AmazonError):
    """A report or feed ended FATAL or CANCELLED instead of DONE."""

    def __init__(self, what: str, ident: str, status: str, document_id: str | None = None) -> None:
        self.what = what
        self.ident = ident
        self.status = status
        self.document_id = document_id
        extra = f"; its document {document_id} may say why" if document_id else ""
        super().__init__(f"{what} {ident} ended {status}{extra}")


class FeedFormatError(AmazonError):
    """An XML feed or processing report cannot be read (names the element)."""
