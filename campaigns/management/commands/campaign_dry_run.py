from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from behavior.management.commands._common import iso_time
from campaigns.models import Campaign
from campaigns.selectors import campaign_dry_run, campaign_preview, campaign_targeting
from campaigns.uplift import ranking_in_words


class Command(BaseCommand):
    help = "A campaign's audience now, and what it would have done over a past window of the stored history."

    def add_arguments(self, parser):
        parser.add_argument("campaign", type=int, help="campaign id")
        parser.add_argument("--from", dest="start", type=iso_time, help="first evaluation (default: 8 weeks ago)")
        parser.add_argument("--to", dest="end", type=iso_time,
                            help="end of the replay (default: now minus the attribution window)")

    def handle(self, *, campaign, start, end, **options):
        chosen = Campaign.objects.filter(pk=campaign).first()
        if chosen is None:
            raise CommandError(f"no campaign {campaign}")
        now = timezone.now()
        end = end or now - timedelta(days=chosen.attribution_days)
        start = start or end - timedelta(weeks=8)
        preview = campaign_preview(campaign=chosen)
        cost = "" if preview.expected_cost is None else f", expected cost {preview.expected_cost:,.2f}"
        self.stdout.write(f"{chosen.name} ({chosen.kind}, {chosen.status})")
        extra = "" if preview.expected_uplift is None else f" ({preview.expected_uplift:+,.1f} because of it)"
        self.stdout.write(f"now: {preview.audience:,} in the audience, picked {preview.targeting}: {preview.kept:,} "
                          f"kept, {preview.holdout:,} would be held out, {preview.treated:,} treated, "
                          f"{preview.expected_redemptions:,.0f} expected to buy{extra}{cost}")
        model = campaign_targeting(chosen).model
        if model is not None:
            self.stdout.write(f"\non its own history, customers the uplift model did not learn from "
                              f"({model.metrics['validation_assignments']:,}):")
            self.stdout.write(f"  by predicted uplift: {ranking_in_words(model.metrics)}")
            self.stdout.write(f"  by likelihood to buy when treated (a response model, as score bands rank): "
                              f"{ranking_in_words(model.metrics, 'response_')}")
        try:
            periods = campaign_dry_run(campaign=chosen, start=start, end=end)
        except ValueError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(f"\nhad it run every {chosen.period_days} days from {start:%Y-%m-%d} "
                          f"(purchases within {chosen.attribution_days} days, without any offer):")
        self.stdout.write(f"{'at':<12}{'audience':>10}{'treated':>10}{'bought':>9}{'rate':>8}{'discount':>12}")
        for p in periods:
            rate = "-" if p.conversion is None else f"{p.conversion:.1%}"
            stake = "-" if p.discount_on_their_orders is None else f"{p.discount_on_their_orders:,.2f}"
            self.stdout.write(f"{p.at:%Y-%m-%d}  {p.audience:>10,}{p.treated:>10,}{p.bought_anyway:>9,}{rate:>8}"
                              f"{stake:>12}")
        if any(p.discount_on_their_orders is not None for p in periods):
            self.stdout.write("discount: what the coupon would have cost on orders these customers placed anyway; "
                              "the uplift itself only a live holdout group measures")
