from django.db import migrations, models


class Migration(migrations.Migration):
    """One Foresight price offer per order unless both campaigns allow stacking: the offer's switch, and the index
    a redemption finds the offers already redeemed on its order with."""

    dependencies = [
        ("campaigns", "0009_evaluate_campaigns_schedule"),
    ]

    operations = [
        migrations.AddField(
            model_name="priceoffersettings",
            name="may_stack",
            field=models.BooleanField(default=False, help_text=(
                "Its coupon may join another Foresight price offer on one order, if that offer's campaign allows "
                "stacking too. Off: an order takes this offer alone.")),
        ),
        migrations.AddIndex(
            model_name="coupon",
            index=models.Index(condition=models.Q(("redeemed_at__isnull", False)), fields=["order_id"],
                               name="coupon_redeemed_order"),
        ),
    ]
