"""One exception tree for yuqing; library exceptions are mapped into it at each boundary."""

from __future__ import annotations


class YuqingError(Exception):
    """Base of every error yuqing raises on purpose."""

    status = 500

    def __init__(self, message: str, *, errors: list[dict] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or []


class ConfigError(YuqingError):
    """The configuration file is missing, unreadable or invalid."""


class SourceError(YuqingError):
    """A source is unknown, misconfigured or failed to deliver."""

    status = 400


class ExtractionError(YuqingError):
    """A raw record or page could not be turned into an item."""

    status = 422


class InputError(YuqingError):
    """A caller sent a request that cannot be understood (bad filter, cursor, query)."""

    status = 400


class QuerySyntaxError(InputError):
    """A full-text or scheme query could not be parsed."""

    def __init__(self, message: str, *, position: int | None = None) -> None:
        detail = [{"loc": ["q"], "msg": message, "position": position}]
        super().__init__(message, errors=detail)
        self.position = position


class StorageError(YuqingError):
    """The store failed to read or write."""


class StorageUnavailable(StorageError):
    """The database cannot be reached (down, restarting, network cut): try again shortly; nothing was lost."""

    status = 503


class NotFound(StorageError):
    """The requested record does not exist."""

    status = 404


class ModelError(YuqingError):
    """A trained model is missing, incompatible or failed."""


class NotifyError(YuqingError):
    """A notification channel failed; `recoverable` says whether a retry may succeed.

    The message goes to the outbox (`last_error`), the audit trail, logs and API answers, and may quote a receiver's
    answer or a library's exception: it is redacted here (core.redact), once for all of them."""

    status = 502

    def __init__(self, message: str, *, recoverable: bool) -> None:
        from core.redact import redact_text  # core.errors is imported everywhere; keep its own imports minimal

        super().__init__(redact_text(message))
        self.recoverable = recoverable


class PlaybookError(YuqingError):
    """A response plan is invalid or an operation on a run is not allowed."""

    status = 400


class InvalidTransition(PlaybookError):
    """A plan run cannot move from its current state to the requested one."""

    status = 409


class NotAuthenticated(YuqingError):
    """No valid session or token came with the request (missing, wrong, expired, revoked or forged)."""

    status = 401


class PermissionDenied(YuqingError):
    """The caller's role does not allow this operation."""

    status = 403


class ReportError(YuqingError):
    """A report cannot be rendered here: no CJK font for its PDF and charts."""

    status = 503
