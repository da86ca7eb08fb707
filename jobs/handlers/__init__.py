"""Handlers: Python callables registered by name, shipped with the deployment.

    from jobs.handlers import handler, JobContext

    @handler("reports.build", title="Build a report", schema={...}, cost="0.02", timeout=600)
    def build(ctx: JobContext) -> dict:
        ...
"""

from jobs.error_codes import JobError
from jobs.handlers.context import JobContext
from jobs.handlers.registry import Handler, get_handler, handler, registered_handlers

__all__ = ["Handler", "JobContext", "JobError", "get_handler", "handler", "registered_handlers"]
