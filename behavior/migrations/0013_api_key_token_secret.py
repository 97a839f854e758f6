import secrets

from django.db import migrations, models


def give_each_key_a_token_secret(apps, schema_editor):
    ApiKey = apps.get_model("behavior", "ApiKey")
    for key in ApiKey.objects.filter(token_secret=""):
        key.token_secret = "fst_" + secrets.token_urlsafe(32)
        key.save(update_fields=["token_secret"])


class Migration(migrations.Migration):
    dependencies = [("behavior", "0012_order_approved")]

    operations = [
        migrations.AddField(
            model_name="apikey",
            name="token_secret",
            field=models.CharField(default="", editable=False, max_length=64,
                                   help_text="Signs customer tokens; shown once, when the key is made."),
        ),
        migrations.RunPython(give_each_key_a_token_secret, migrations.RunPython.noop),
    ]
