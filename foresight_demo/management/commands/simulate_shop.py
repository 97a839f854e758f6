
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from behavior.management.commands._common import iso_time
from foresight_demo.services import BLOCK_CUSTOMERS, SimulationReport, shop_simulate


class Command(BaseCommand):
    help = "Fill the database with a simulated shop: customers, products and their events (see docs/simulator.md)."

    def add_arguments(self, parser):
        parser.add_argument("--customers", type=int, default=10_000)
        parser.add_argument("--days", type=int, default=90)
        parser.add_argument("--seed", type=int, default=0, help="the same seed adds nothing when run again")
        parser.add_argument("--end", type=iso_time, default=None, help="ISO time the period ends (default: now; UTC)")
        parser.add_argument("--products", type=int, default=5_000)
        parser.add_argument("--block", type=int, default=BLOCK_CUSTOMERS, help="customers generated and stored at once")

    def handle(self, *, customers, days, seed, end, products, block, verbosity, **options):
        with tqdm(total=customers, unit="customer", disable=verbosity < 1) as bar:

            def on_block(report: SimulationReport) -> None:
                bar.update(report.customers - bar.n)
                bar.set_postfix(events=report.events_stored)

            try:
                report = shop_simulate(customers=customers, days=days, seed=seed, end=end, products=products,
                                       block_customers=block, on_block=on_block)
            except ValueError as error:
                raise CommandError(str(error)) from error
        rate = report.events_generated / report.seconds if report.seconds else 0
        self.stdout.write(
            f"{report.customers} customers, {report.products} products, {report.events_generated} events"
            f" ({report.events_stored} new) in {report.seconds:.1f} s, {rate:,.0f} events/s"
        )
