# The ticker's wake at the next start time (jobs.dispatch.next_start_in): MIN(run_after) WHERE
# status = 'queued' AND dispatched_at IS NULL AND run_after > now. Partial, so it holds only the
# jobs waiting for a start time. Built CONCURRENTLY on PostgreSQL (hence atomic = False) so a big
# jobs table stays writable meanwhile.

from django.db import migrations, models

INDEX = models.Index(
    fields=["run_after"],
    condition=models.Q(status="queued", dispatched_at__isnull=True, run_after__isnull=False),
    name="job_waiting_start",
)
CREATE = ("CREATE INDEX CONCURRENTLY IF NOT EXISTS job_waiting_start ON jobs_job (run_after) "
          "WHERE status = 'queued' AND dispatched_at IS NULL AND run_after IS NOT NULL")
DROP = "DROP INDEX CONCURRENTLY IF EXISTS job_waiting_start"


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)
    else:
        schema_editor.add_index(apps.get_model("jobs", "Job"), INDEX)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)
    else:
        schema_editor.remove_index(apps.get_model("jobs", "Job"), INDEX)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("jobs", "0009_attempt_interrupted"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(forward, backward, elidable=False)],
            state_operations=[migrations.AddIndex(model_name="job", index=INDEX)],
        ),
    ]
