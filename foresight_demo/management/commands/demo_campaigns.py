from django.core.management.base import BaseCommand, CommandError

from behavior.models import ScoringRun
from campaigns.models import Assignment, Campaign, Coupon
from campaigns.selectors import campaign_preview
from campaigns.services import campaign_create, campaigns_evaluate, placements_show

DEMO_CAMPAIGNS = [
    dict(name="Demo: 10% off for hesitant shoppers", kind="price_offer", priority=10,
         condition={"all": [{"field": "score.purchase_intent", "op": "between", "value": [0.05, 0.4]},
                            {"field": "feature.cart_adds_unbought_30d", "op": "gte", "value": 1}]},
         holdout_percent=10, discount_kind="percent", discount_value=10, min_order=30,
         valid_days=7, budget=5_000, skip_likely_buyers_above=0.4),
    dict(name="Demo: picked for you", kind="ad", priority=5, headline="Picked for you",
         condition={"field": "score.purchase_intent", "op": "gte", "value": 0.02}, holdout_percent=10,
         strategy="blend", products_per_ad=4),
]


class Command(BaseCommand):
    help = "Create the demo campaigns, run them on the latest scoring run and show who got what."

    def handle(self, **options):
        run = ScoringRun.objects.filter(status=ScoringRun.Status.SUCCEEDED).order_by("-finished_at").first()
        if run is None:
            raise CommandError("no finished scoring run: run `manage.py demo` (or `train` and `score`) first")
        heading = self.style.MIGRATE_HEADING
        self.stdout.write(heading("\nCampaigns on the scored customers"))
        campaigns = []
        for values in DEMO_CAMPAIGNS:
            campaign = (Campaign.objects.filter(name=values["name"]).first()
                        or campaign_create(**values, status=Campaign.Status.ACTIVE))
            campaigns.append(campaign)
            p = campaign_preview(campaign=campaign, now=run.as_of)
            cost = "" if p.expected_cost is None else f", expected cost {p.expected_cost:,.2f}"
            self.stdout.write(f"  {campaign.name}: audience {p.audience:,}, holdout {p.holdout:,}{cost}")
        for outcome in campaigns_evaluate(run=run):
            name = Campaign.objects.get(pk=outcome.rule).name
            self.stdout.write(f"  {name}: {outcome.reached:,} treated, {outcome.control:,} held out as control, "
                              f"{outcome.out_of_budget:,} skipped (contact budget spent)")
        self.stdout.write(f"  {Coupon.objects.count():,} coupon codes minted, "
                          f"{Assignment.objects.filter(group='control').count():,} customers in control groups")
        self._show_one_customer(campaigns, run)

    def _show_one_customer(self, campaigns, run) -> None:
        treated = Assignment.objects.filter(campaign__in=campaigns, group="treatment").select_related("customer")
        example = treated.filter(coupon__isnull=False).first() or treated.first()
        if example is None:
            return
        customer = example.customer
        self.stdout.write(self.style.MIGRATE_HEADING(f"\nWhat the storefront shows {customer.external_id} "
                                                     f"(GET /api/v1/customers/{customer.external_id}/placements)"))
        for placement in placements_show(customer_external_id=customer.external_id, slot="home", now=run.as_of):
            self.stdout.write(f"  {placement.campaign_name}, because {placement.reason}")
            if (offer := placement.offer) is not None:
                unit = "%" if offer.discount_kind == "percent" else ""
                self.stdout.write(f"    coupon {offer.code}: {offer.discount_value.normalize():f}{unit} off orders"
                                  f" from {offer.min_order}, until {offer.expires_at:%Y-%m-%d}")
            for product in placement.products:
                self.stdout.write(f"    {product['name']} ({product['why']})")
