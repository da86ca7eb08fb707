from django.conf import settings
from django.db import migrations
from django.db.models import OuterRef, Subquery


def fill(apps, schema_editor):
    """The makers' usernames of the tokens made before the name was kept with them."""
    ApiToken = apps.get_model("teams", "ApiToken")
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    ApiToken.objects.filter(created_by__isnull=False).update(
        created_by_name=Subquery(User.objects.filter(pk=OuterRef("created_by_id")).values("username")[:1]))


class Migration(migrations.Migration):

    dependencies = [
        ("teams", "0004_token_created_by_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
