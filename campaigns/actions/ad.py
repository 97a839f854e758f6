"""Personalized ads: products recommended for each treated customer, shown in the campaign's storefront slot."""

from __future__ import annotations

import pandas as pd
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Sum

from behavior.actions import action_register
from behavior.models import Product
from campaigns.actions.base import Action, ActionSettings
from campaigns.models import Assignment
from campaigns.recommend import STRATEGIES, recommend


class AdSettings(ActionSettings):
    headline = models.CharField(max_length=200, blank=True, help_text="e.g. Picked for you")
    strategy = models.CharField(max_length=32, choices=list(STRATEGIES.items()), default="blend")
    products_per_ad = models.PositiveSmallIntegerField(default=4, validators=[MinValueValidator(1),
                                                                              MaxValueValidator(20)])

    class Meta:
        verbose_name = verbose_name_plural = "ad settings"


@action_register
class Ad(Action):
    kind = "ad"
    label = "personalized ad"
    settings_model = AdSettings
    shown_in_placements = True
    reads_events = True

    def what_it_did(self, campaign, results):
        shown = campaign.assignments.filter(group=Assignment.Group.TREATMENT).aggregate(n=Sum("impressions"))["n"]
        return f"{shown or 0:,} impressions"

    def prepare(self, campaign, customer_ids, events, now):
        if len(customer_ids) == 0:
            return {}
        active = pd.DataFrame.from_records(
            list(Product.objects.filter(active=True).values_list("pk", "external_id", "name")),
            columns=["product_id", "external_id", "name"])
        picks = recommend(events, now, k=campaign.settings.products_per_ad, strategy=campaign.settings.strategy,
                          customer_ids=customer_ids, products=active["product_id"].to_numpy())
        picks = picks.merge(active, on="product_id")
        picks["item"] = [{"product": e, "name": n, "why": STRATEGIES[s]} for e, n, s in
                         zip(picks["external_id"], picks["name"], picks["strategy"], strict=True)]
        products = picks.sort_values(["customer_id", "rank"]).groupby("customer_id")["item"].agg(list)
        return {int(customer): {"products": items} for customer, items in products.items()}
