"""What the jobs app tells the apps built on it, which it never imports (schedules)."""

from __future__ import annotations

from django.dispatch import Signal

# A finished job (failed or cancelled) was put back in the queue by `job_retry`: sent inside its
# transaction with the job locked and queued again, as `job` and `by`.
job_retried = Signal()

# A queued or held job was cancelled (`job_cancel`, or its parent's): sent inside its transaction
# with the job locked and cancelled, as `job` and `by`.
job_cancelled = Signal()
