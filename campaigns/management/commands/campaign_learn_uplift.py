from django.core.management.base import BaseCommand, CommandError

from campaigns.actions.base import CampaignError
from campaigns.models import Campaign
from campaigns.selectors import campaign_targeting
from campaigns.uplift import campaign_uplift_learn, ranking_in_words


class Command(BaseCommand):
    help = ("Learn whom a campaign's action persuades from its own treatment and control groups, measured on "
            "customers it has not seen beside a response model, and register it (champion only if it ranks better).")

    def add_arguments(self, parser):
        parser.add_argument("campaign", type=int, help="campaign id")

    def handle(self, *, campaign, **options):
        chosen = Campaign.objects.filter(pk=campaign).first()
        if chosen is None:
            raise CommandError(f"no campaign {campaign}")
        self.stdout.write(f"{chosen.name}: reading its assignments and each customer's features when assigned ...")
        try:
            version = campaign_uplift_learn(campaign=chosen)
        except CampaignError as error:
            raise CommandError(str(error)) from error
        m = version.metrics
        self.stdout.write(f"{m['assignments']:,} assignments; measured on {m['validation_assignments']:,} of "
                          f"customers held out from learning; learner: {version.params['learner']}")
        self.stdout.write(f"uplift model:   {ranking_in_words(m)}")
        self.stdout.write(f"response model: {ranking_in_words(m, 'response_')}")
        self.stdout.write(f"{m['serves']} serves: {m['why']}")
        if version.status == "champion":
            verdict = "champion: targeting by uplift uses it"
        elif m["serves"] != version.params["learner"]:
            verdict = "retired: the campaign's condition picks its audience (" + campaign_targeting(chosen).says + ")"
        else:
            verdict = "not better than the current champion: kept as a retired version"
        self.stdout.write(f"model version {version.pk}: {verdict}")
