# The maker of a token, kept by name (the release before, still inserting tokens during a deploy,
# leaves it out: db_default).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('teams', '0003_team_events_pruned_to'),
    ]

    operations = [
        migrations.AddField(
            model_name='apitoken',
            name='created_by_name',
            field=models.CharField(blank=True, db_default='', default='', max_length=150),
        ),
    ]
