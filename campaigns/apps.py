from django.apps import AppConfig

from behavior.groups import ALL, READ_CUSTOMERS, VIEW


class CampaignsConfig(AppConfig):
    """Personalized ads and price offers, chosen by rules over behaviour scores."""

    name = "campaigns"
    default_auto_field = "django.db.models.BigAutoField"  # its migrations', whatever the project's default
    admin_groups = {"Campaign managers": {
        **READ_CUSTOMERS, "campaigns.campaign": ALL, "campaigns.adsettings": ALL, "campaigns.priceoffersettings": ALL,
        "campaigns.messagecontent": ALL, "campaigns.assignment": VIEW, "campaigns.coupon": VIEW,
        "campaigns.message": VIEW, "campaigns.messagingsettings": VIEW}}  # where messages go: administrators

    def ready(self):
        from django.db.models.signals import post_delete, post_save, pre_delete

        from behavior.models import Customer
        from behavior.signals import customers_changed, scoring_finished
        from campaigns import dashboard  # noqa: F401  its sections of the admin's home page
        from campaigns.actions import registry
        from campaigns.models import Campaign

        scoring_finished.connect(_evaluate_after_scoring, dispatch_uid="campaigns.evaluate")
        # What the storefront is shown changes with a campaign, a customer's consent or erasure: kept answers
        # are retired (the services retire them where they write in bulk: evaluation, redemption).
        campaign_models = [Campaign, *(a.settings_model for a in registry().values() if a.settings_model)]
        for name, signal in (("save", post_save), ("delete", post_delete)):
            for model in campaign_models:
                signal.connect(_campaign_changed, sender=model,
                               dispatch_uid=f"campaigns.placements.{model._meta.model_name}_{name}")
            signal.connect(_customer_changed, sender=Customer, dispatch_uid=f"campaigns.placements.customer_{name}")
        customers_changed.connect(_customers_changed, dispatch_uid="campaigns.placements.customers")
        pre_delete.connect(_customer_erasing, sender=Customer, dispatch_uid="campaigns.placements.customer_erasing")


def _evaluate_after_scoring(sender, run, **kwargs):
    from behavior.broker import hand_over
    from campaigns.tasks import evaluate_campaigns

    # The signal comes after the run's commit: workers see fresh scores. With the broker down this run is
    # skipped (the run stays succeeded, the other listeners still run) and the next scoring run acts instead.
    hand_over(evaluate_campaigns.si(run.pk), sweeper="the next scoring run")


def _campaign_changed(sender, **kwargs):
    from campaigns.placements_cache import placements_changed

    placements_changed()


def _customer_changed(sender, instance, **kwargs):
    from campaigns.placements_cache import placements_changed

    placements_changed([instance.external_id])


def _customer_erasing(sender, instance, **kwargs):
    from campaigns.placements_cache import placements_sealed

    placements_sealed([instance.external_id])  # before the commit: an erasure that cannot reach Redis is refused


def _customers_changed(sender, external_ids, **kwargs):
    from campaigns.placements_cache import placements_changed

    placements_changed(external_ids)
