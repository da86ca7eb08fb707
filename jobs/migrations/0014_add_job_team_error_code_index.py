# The admin's error code filter on the jobs list, team by team: WHERE team_id IN (…) AND
# error_code = ? AND error_code <> '' ORDER BY id DESC. Partial, so it holds only the jobs that
# ended with a code.

from django.db import migrations, models

from pulse_site.migration_operations import AddIndexConcurrently


class Migration(migrations.Migration):
    atomic = False  # AddIndexConcurrently

    dependencies = [
        ("jobs", "0013_job_cancelled_by"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="job",
            index=models.Index(fields=["team", "error_code", "-id"], condition=~models.Q(error_code=""),
                               name="job_team_error_code_id"),
        ),
    ]
