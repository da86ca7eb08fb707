# The admin's error code filter on the jobs list, team by team: WHERE team_id IN (…) AND
# error_code = ? AND error_code <> '' ORDER BY id DESC. Partial, so it holds only the jobs that
# ended with a code. Built CONCURRENTLY on PostgreSQL (hence atomic = False) so a big jobs table
# stays writable meanwhile.

from django.db import migrations, models

INDEX = models.Index(fields=["team", "error_code", "-id"], condition=~models.Q(error_code=""),
                     name="job_team_error_code_id")
CREATE = ("CREATE INDEX CONCURRENTLY IF NOT EXISTS job_team_error_code_id ON jobs_job (team_id, error_code, id DESC) "
          "WHERE NOT (error_code = '')")
DROP = "DROP INDEX CONCURRENTLY IF EXISTS job_team_error_code_id"


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
        ("jobs", "0013_job_cancelled_by"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(forward, backward, elidable=False)],
            state_operations=[migrations.AddIndex(model_name="job", index=INDEX)],
        ),
    ]
