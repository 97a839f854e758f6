import re

import django.db.models.deletion
from django.db import migrations, models


def link_existing_offers(apps, schema_editor):
    """Offers made before this table were found by their names, "<campaign> (Foresight campaign <pk>)": link them.
    Their names become the headline as the campaign's next coupons are minted."""
    ConditionalOffer = apps.get_model("offer", "ConditionalOffer")
    Campaign = apps.get_model("campaigns", "Campaign")
    CampaignOffer = apps.get_model("foresight_oscar", "CampaignOffer")
    for offer in ConditionalOffer.objects.filter(name__contains="(Foresight campaign "):
        found = re.search(r"\(Foresight campaign (\d+)\)$", offer.name)
        if found and Campaign.objects.filter(pk=int(found[1])).exists():
            CampaignOffer.objects.get_or_create(campaign_id=int(found[1]), defaults={"offer": offer})


class Migration(migrations.Migration):

    dependencies = [
        ("campaigns", "0010_offers_per_order"),
        ("foresight_oscar", "0001_initial"),
        ("offer", "0013_range_excluded_categories"),
        ("voucher", "0010_auto_20210224_0712"),
    ]

    operations = [
        migrations.CreateModel(
            name="CampaignOffer",
            fields=[
                ("campaign", models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True,
                                                  related_name="oscar_offer", serialize=False,
                                                  to="campaigns.campaign")),
                ("offer", models.OneToOneField(on_delete=django.db.models.deletion.CASCADE,
                                               related_name="foresight", to="offer.conditionaloffer")),
                ("voucher_set", models.OneToOneField(null=True, on_delete=django.db.models.deletion.SET_NULL,
                                                     related_name="foresight", to="voucher.voucherset")),
            ],
        ),
        migrations.RunPython(link_existing_offers, migrations.RunPython.noop),
    ]
