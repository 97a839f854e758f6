from django.core.management import call_command
from django.core.management.base import BaseCommand

from behavior.selectors import shop_overview


class Command(BaseCommand):
    help = "Simulate a shop, train both models on it, score every customer and show what Foresight found."

    def add_arguments(self, parser):
        parser.add_argument("--customers", type=int, default=20_000)
        parser.add_argument("--days", type=int, default=150)
        parser.add_argument("--seed", type=int, default=7)

    def handle(self, customers, days, seed, **options):
        self.stdout.write(self.style.MIGRATE_HEADING(f"Simulating a shop: {customers:,} customers over {days} days"))
        call_command("simulate_shop", customers=customers, days=days, seed=seed, stdout=self.stdout)
        self._show_overview()
        self.stdout.write(self.style.MIGRATE_HEADING("\nTraining purchase intent and support risk"))
        call_command("train", stdout=self.stdout)
        self.stdout.write(self.style.MIGRATE_HEADING("\nScoring every customer"))
        call_command("score", stdout=self.stdout)

    def _show_overview(self) -> None:
        data = shop_overview()
        self.stdout.write(self.style.MIGRATE_HEADING("\nWhat the shop's data holds"))
        self.stdout.write(f"  {data.customers:,} customers, {data.products:,} products, "
                          f"{sum(data.events_by_type.values()):,} events "
                          f"from {data.first_event:%Y-%m-%d} to {data.last_event:%Y-%m-%d}")
        width = max(map(len, data.events_by_type))
        for event_type, count in sorted(data.events_by_type.items(), key=lambda item: -item[1]):
            self.stdout.write(f"    {event_type:<{width}}  {count:>9,}")
        late = data.late_orders / data.orders if data.orders else 0
        bad = data.bad_reviews / data.reviews if data.reviews else 0
        self.stdout.write(f"  {data.orders:,} orders, {late:.1%} delivered late; "
                          f"{data.reviews:,} reviews, {bad:.1%} rated 1 or 2")
