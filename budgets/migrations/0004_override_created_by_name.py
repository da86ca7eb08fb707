# The maker of an override, kept by name (the release before, still inserting overrides during a
# deploy, leaves it out: db_default).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('budgets', '0003_alert_per_limit'),
    ]

    operations = [
        migrations.AddField(
            model_name='override',
            name='created_by_name',
            field=models.CharField(blank=True, db_default='', default='', max_length=150),
        ),
    ]
