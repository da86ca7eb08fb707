# The ticker's wake at the next start time (jobs.dispatch.next_start_in): MIN(run_after) WHERE
# status = 'queued' AND dispatched_at IS NULL AND run_after > now. Partial, so it holds only the
# jobs waiting for a start time.

from django.db import migrations, models

from pulse_site.migration_operations import AddIndexConcurrently


class Migration(migrations.Migration):
    atomic = False  # AddIndexConcurrently

    dependencies = [
        ("jobs", "0009_attempt_interrupted"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="job",
            index=models.Index(
                fields=["run_after"],
                condition=models.Q(status="queued", dispatched_at__isnull=True, run_after__isnull=False),
                name="job_waiting_start",
            ),
        ),
    ]
