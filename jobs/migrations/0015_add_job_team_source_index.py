# The admin's source filter on the jobs list, team by team: WHERE team_id IN (…) AND source = ?
# ORDER BY id DESC.

from django.db import migrations, models

from pulse_site.migration_operations import AddIndexConcurrently


class Migration(migrations.Migration):
    atomic = False  # AddIndexConcurrently

    dependencies = [
        ("jobs", "0014_add_job_team_error_code_index"),
    ]

    operations = [
        AddIndexConcurrently(model_name="job", index=models.Index(fields=["team", "source", "-id"],
                                                                  name="job_team_source_id")),
    ]
