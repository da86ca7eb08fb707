# The activity history's reads by family and by subject, for the rare events only (not job.* nor
# execution.*: pulse_site.live.models.RARE_EVENTS), so that the inserts on every job's way maintain
# no more indexes than before. Built CONCURRENTLY on PostgreSQL (hence atomic = False) so a big
# events table stays writable meanwhile; the statement is Django's own with CONCURRENTLY added, so
# the predicate reads exactly as the queries' (the planner matches it word for word).

from django.db import migrations, models

RARE_EVENTS = ~models.Q(kind__startswith="job.") & ~models.Q(kind__startswith="execution.")
INDEXES = [
    models.Index(fields=["team", "kind", "id"], condition=RARE_EVENTS, name="event_team_rare_kind"),
    models.Index(fields=["team", "subject", "id"], condition=RARE_EVENTS, name="event_team_rare_subject"),
]


def forward(apps, schema_editor):
    event = apps.get_model("live", "Event")
    for index in INDEXES:
        if schema_editor.connection.vendor == "postgresql":
            sql = str(index.create_sql(event, schema_editor))
            schema_editor.execute(sql.replace("CREATE INDEX", "CREATE INDEX CONCURRENTLY IF NOT EXISTS", 1), params=None)
        else:
            schema_editor.add_index(event, index)


def backward(apps, schema_editor):
    event = apps.get_model("live", "Event")
    for index in INDEXES:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {index.name}")
        else:
            schema_editor.remove_index(event, index)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("live", "0002_relay_late_ids"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(forward, backward, elidable=False)],
            state_operations=[migrations.AddIndex(model_name="event", index=index) for index in INDEXES],
        ),
    ]
