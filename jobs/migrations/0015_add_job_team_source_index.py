# The admin's source filter on the jobs list, team by team: WHERE team_id IN (…) AND source = ?
# ORDER BY id DESC. Built CONCURRENTLY on PostgreSQL (hence atomic = False) so a big jobs table
# stays writable meanwhile.

from django.db import migrations, models

INDEX = models.Index(fields=["team", "source", "-id"], name="job_team_source_id")
CREATE = "CREATE INDEX CONCURRENTLY IF NOT EXISTS job_team_source_id ON jobs_job (team_id, source, id DESC)"
DROP = "DROP INDEX CONCURRENTLY IF EXISTS job_team_source_id"


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
        ("jobs", "0014_add_job_team_error_code_index"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(forward, backward, elidable=False)],
            state_operations=[migrations.AddIndex(model_name="job", index=INDEX)],
        ),
    ]
