# The activity history's reads by family and by subject, for the rare events only (not job.* nor
# execution.*: pulse_site.live.models.RARE_EVENTS), so that the inserts on every job's way maintain
# no more indexes than before.

from django.db import migrations, models

from pulse_site.migration_operations import AddIndexConcurrently

RARE_EVENTS = ~models.Q(kind__startswith="job.") & ~models.Q(kind__startswith="execution.")


class Migration(migrations.Migration):
    atomic = False  # AddIndexConcurrently

    dependencies = [
        ("live", "0002_relay_late_ids"),
    ]

    operations = [
        AddIndexConcurrently(model_name="event", index=models.Index(fields=["team", "kind", "id"],
                                                                    condition=RARE_EVENTS, name="event_team_rare_kind")),
        AddIndexConcurrently(model_name="event", index=models.Index(fields=["team", "subject", "id"],
                                                                    condition=RARE_EVENTS,
                                                                    name="event_team_rare_subject")),
    ]
