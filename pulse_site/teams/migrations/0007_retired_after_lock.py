"""pulse_retired_after_lock(keys, teams): take each retirement lock in `keys` shared, in order,
then name the retired teams of `teams` as they are once the locks are held (a VOLATILE function's
query takes its own snapshot: the calling statement's predates a retirement it waited for). One
round trip for what took two on every submit (pulse_site.teams.services.teams_refusing_work).
PostgreSQL only: SQLite serializes its writers and reads the flag plainly."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION pulse_retired_after_lock(keys bigint[], teams bigint[]) RETURNS SETOF bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    k bigint;
BEGIN
    FOREACH k IN ARRAY keys LOOP
        PERFORM pg_advisory_xact_lock_shared(k);
    END LOOP;
    RETURN QUERY SELECT id FROM teams_team WHERE id = ANY(teams) AND retired_at IS NOT NULL;
END
$$
"""
DROP = "DROP FUNCTION IF EXISTS pulse_retired_after_lock(bigint[], bigint[])"


def _on_postgresql(sql: str):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)
    return run


class Migration(migrations.Migration):

    dependencies = [
        ("teams", "0006_team_retired"),
    ]

    operations = [
        migrations.RunPython(_on_postgresql(CREATE), _on_postgresql(DROP)),
    ]
