from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def record_how_finished_runs_ended(apps, schema_editor):
    """Runs already followed up whose job is still there: how it ended, before the job goes."""
    Execution = apps.get_model("schedules", "Execution")
    Job = apps.get_model("jobs", "Job")
    Execution.objects.filter(finished_at__isnull=False, job__isnull=False).update(
        ended=Subquery(Job.objects.filter(pk=OuterRef("job_id")).values("status")[:1]))


class Migration(migrations.Migration):

    dependencies = [
        ('schedules', '0002_execution_failed_outcome'),
        ('jobs', '0001_initial'),
    ]

    operations = [
        migrations.AddField(
            model_name='execution',
            name='ended',
            field=models.CharField(blank=True, default='', max_length=9),
        ),
        migrations.RunPython(record_how_finished_runs_ended, migrations.RunPython.noop),
    ]
