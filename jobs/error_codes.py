"""Error codes a job can end with (the seed's list, plus Pulse's own) and their default flags.

`retryable`: trying again may succeed, so the handler's retry policy applies by default.
`recoverable`: the job's inputs are sound; a person can retry it after fixing the cause.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import models


class ErrorCode(models.TextChoices):
    AI_ERROR = "ai_error", "AI provider error"
    DATABASE_ERROR = "database_error", "Database error"
    FILE_NOT_FOUND = "file_not_found", "File not found"
    NETWORK_ERROR = "network_error", "Network error"
    PARSE_ERROR = "parse_error", "Parse error"
    TIMEOUT = "timeout", "Timed out"
    UNKNOWN = "unknown", "Unknown error"
    VALIDATION_ERROR = "validation_error", "Validation error"
    WORKER_LOST = "worker_lost", "Worker lost"
    BUDGET_EXCEEDED = "budget_exceeded", "Over budget"
    INTERRUPTED = "interrupted", "Interrupted (worker stopped)"


@dataclass(frozen=True)
class CodeFlags:
    retryable: bool
    recoverable: bool


FLAGS: dict[str, CodeFlags] = {
    ErrorCode.AI_ERROR: CodeFlags(retryable=True, recoverable=True),
    ErrorCode.DATABASE_ERROR: CodeFlags(retryable=True, recoverable=True),
    ErrorCode.FILE_NOT_FOUND: CodeFlags(retryable=False, recoverable=True),
    ErrorCode.NETWORK_ERROR: CodeFlags(retryable=True, recoverable=True),
    ErrorCode.PARSE_ERROR: CodeFlags(retryable=False, recoverable=False),
    ErrorCode.TIMEOUT: CodeFlags(retryable=True, recoverable=True),
    ErrorCode.UNKNOWN: CodeFlags(retryable=False, recoverable=True),
    ErrorCode.VALIDATION_ERROR: CodeFlags(retryable=False, recoverable=False),
    ErrorCode.WORKER_LOST: CodeFlags(retryable=True, recoverable=True),
    # Admission refused it under an over-budget = fail policy: retrying once there is budget is fine.
    ErrorCode.BUDGET_EXCEEDED: CodeFlags(retryable=False, recoverable=True),
    # Its worker was stopped: the job goes straight back to the queue for another worker.
    ErrorCode.INTERRUPTED: CodeFlags(retryable=True, recoverable=True),
}

DEFAULT_RETRY_ON = frozenset(code for code, flags in FLAGS.items() if flags.retryable)

# The codes a handler's JobError may give (the seed's list). The others say what Pulse saw — a lost
# lease, a stopped worker, a refusal at admission — and a handler giving one is recorded as unknown.
HANDLER_CODES = frozenset(FLAGS) - {ErrorCode.WORKER_LOST, ErrorCode.INTERRUPTED, ErrorCode.BUDGET_EXCEEDED}


class JobError(Exception):
    """Raised by a handler to end its attempt with a specific error code."""

    def __init__(self, code: str, message: str, *, details: dict[str, object] | None = None,
                 retryable: bool | None = None) -> None:
        details = dict(details or {})
        if code not in HANDLER_CODES:
            # Recorded as unknown (its flags, its filters), but the code the handler gave is kept.
            details.setdefault("code_given", str(code)[:100])
            code = ErrorCode.UNKNOWN
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
        self.retryable = retryable


class JobTimeout(BaseException):
    """Raised inside the handler when its timeout passes.

    A BaseException, like django-q2's own TimeoutException, so that a handler's broad
    `except Exception` cannot swallow it.
    """


class JobInterrupted(BaseException):
    """Raised inside the handler when its worker is stopping and the stop timeout has passed
    (a BaseException like JobTimeout, for the same reason)."""


class JobCancelled(BaseException):
    """Raised inside a handler still running PULSE_CANCEL_GRACE_SECONDS after its job was
    cancelled (it did not look at ctx.cancelled(), or is stuck in a call): the job ends cancelled
    (a BaseException like JobTimeout, for the same reason)."""
