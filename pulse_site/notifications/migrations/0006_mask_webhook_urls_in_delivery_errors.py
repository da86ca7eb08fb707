"""Mask the webhook URLs in the errors of deliveries that failed before pulse.notify masked them.

Since the masking change a delivery's error names its webhook's URL as scheme://host[:port]/… (the
path or query may be the receiver's secret: Slack's /services/T…/B…/…, Discord's
/api/webhooks/<id>/<token>, a ?token=); errors stored before it carry the whole URL, read by
everyone in the team. They are in the delivery job's error, its attempts' errors and tracebacks,
its log lines and its events' copies of the job ("error": {"message"}). Every http(s) URL in them is
masked as new errors are (the function below is a frozen copy of
pulse_site.notifications.addresses.mask_urls_in, which may change).

Each table is read in primary-key order, BATCH rows at a time, each batch in a transaction of its
own (the migration is not atomic: one transaction over a large table would hold its row locks to
the end). Masking is idempotent, so a run cut short is finished by running it again. Reversing it
does nothing: the URLs are gone, which is the point.
"""

import re
from urllib.parse import urlsplit

from django.db import migrations, transaction
from django.db.models import Q

NOTIFY_HANDLER = "pulse.notify"
BATCH = 1_000
MASK = "…"
_URL_IN_TEXT = re.compile(r"https?://[^\s'\"<>]+", re.IGNORECASE)


def mask_url(url):
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    host = parts.netloc.rpartition("@")[2]
    if not parts.scheme or not host:
        return MASK
    return f"{parts.scheme.lower()}://{host}/{MASK}"


def mask_urls_in(text):
    return _URL_IN_TEXT.sub(lambda match: mask_url(match.group(0)), text)


def batches(rows, *fields):
    """`fields` (the primary key first) of `rows`, BATCH at a time in primary-key order: each
    read starts where the last stopped, so the table is read once."""
    last = None
    while True:
        page = rows if last is None else rows.filter(pk__gt=last)
        batch = list(page.order_by("pk").values_list("pk", *fields)[:BATCH])
        if not batch:
            return
        last = batch[-1][0]
        yield batch


def mask_texts(model, rows, fields):
    """Mask the URLs in the text `fields` of `rows`. A row is written only if it changed, and only
    while it still holds what was read (a job's error changes when it is retried or fails again)."""
    for batch in batches(rows, *fields):
        with transaction.atomic():
            for pk, *texts in batch:
                masked = [mask_urls_in(text) for text in texts]
                if masked != texts:
                    model.objects.filter(pk=pk, **dict(zip(fields, texts))).update(**dict(zip(fields, masked)))


def mask_events(Event):
    """The jobs' events carry the job as it was, its error message with it. Events are written
    once and never changed, so a batch's changed rows are written back together."""
    rows = Event.objects.filter(kind__startswith="job.", payload__handler=NOTIFY_HANDLER)
    for batch in batches(rows, "payload"):
        changed = []
        for pk, payload in batch:
            error = payload.get("error") if isinstance(payload, dict) else None
            message = error.get("message") if isinstance(error, dict) else None
            if isinstance(message, str) and mask_urls_in(message) != message:
                payload["error"]["message"] = mask_urls_in(message)
                changed.append(Event(pk=pk, payload=payload))
        with transaction.atomic():
            Event.objects.bulk_update(changed, ["payload"])


def mask_delivery_errors(apps, schema_editor):
    Job = apps.get_model("jobs", "Job")
    Attempt = apps.get_model("jobs", "Attempt")
    TaskLog = apps.get_model("jobs", "TaskLog")
    Event = apps.get_model("live", "Event")
    deliveries = Job.objects.filter(handler=NOTIFY_HANDLER)
    url = "://"
    mask_texts(Job, deliveries.filter(error_message__contains=url), ["error_message"])
    mask_texts(Attempt, Attempt.objects.filter(Q(error_message__contains=url) | Q(traceback__contains=url),
                                               job__handler=NOTIFY_HANDLER), ["error_message", "traceback"])
    mask_texts(TaskLog, TaskLog.objects.filter(message__contains=url, job__handler=NOTIFY_HANDLER), ["message"])
    mask_events(Event)


class Migration(migrations.Migration):

    atomic = False

    dependencies = [
        ("notifications", "0005_rule_error_codes"),
        ("jobs", "0013_job_cancelled_by"),
        ("live", "0003_event_rare_indexes"),
    ]

    operations = [
        migrations.RunPython(mask_delivery_errors, migrations.RunPython.noop, elidable=True),
    ]
