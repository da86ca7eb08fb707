from django.conf import settings
from django.db import migrations
from django.db.models import OuterRef, Subquery


def fill(apps, schema_editor):
    """The makers' usernames of the overrides made before the name was kept with them."""
    Override = apps.get_model("budgets", "Override")
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    Override.objects.filter(created_by__isnull=False).update(
        created_by_name=Subquery(User.objects.filter(pk=OuterRef("created_by_id")).values("username")[:1]))


class Migration(migrations.Migration):

    dependencies = [
        ("budgets", "0004_override_created_by_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
