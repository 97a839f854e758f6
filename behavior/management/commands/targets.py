import argparse

from django.core.management.base import BaseCommand, CommandError

from behavior.core.event_types import EVENT_TYPES
from behavior.core.features import POPULATIONS
from behavior.models import MAX_HORIZON_DAYS, ModelVersion, Target
from behavior.services.targets import TargetError, target_add, target_change


def population(text: str) -> tuple[str, int | None]:
    """`all`, `buyers`, `active[:DAYS]` or `in_flight[:DAYS]`; without DAYS the window follows the horizon."""
    name, _, days = text.partition(":")
    if name not in POPULATIONS:
        raise argparse.ArgumentTypeError(f"unknown population {name!r}; one of all, buyers, active:DAYS, "
                                         "in_flight:DAYS")
    if not days:
        return name, None
    if name not in ("active", "in_flight"):
        raise argparse.ArgumentTypeError(f"{name} takes no days")
    if not days.isdigit() or not 1 <= int(days) <= 3 * MAX_HORIZON_DAYS:
        raise argparse.ArgumentTypeError(f"days must be a whole number from 1 to {3 * MAX_HORIZON_DAYS}, not {days!r}")
    return name, int(days)


def event_types(text: str) -> list[str]:
    types = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in types if t not in EVENT_TYPES]
    if unknown or not types:
        raise argparse.ArgumentTypeError(f"unknown event type(s) {', '.join(unknown) or '(none given)'}; known: "
                                         f"{', '.join(EVENT_TYPES)}")
    return types


def rating(text: str) -> int | None:
    if text == "none":
        return None
    if not text.isdigit() or not 1 <= int(text) <= 5:
        raise argparse.ArgumentTypeError(f"a rating from 1 to 5, or none; not {text!r}")
    return int(text)


class Command(BaseCommand):
    help = "List the prediction targets, change one (`targets set NAME ...`) or define one (`targets add NAME ...`)."

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", title="actions", required=False)
        for action, words in (("set", "change a target (its models retire when what it asks changes)"),
                              ("add", "define a new target, scored as score.NAME")):
            sub = actions.add_parser(action, help=words, description=words, called_from_command_line=getattr(
                parser, "called_from_command_line", None))
            sub.add_argument("name")
            sub.add_argument("--horizon-days", type=int, required=action == "add", default=argparse.SUPPRESS,
                             help=f"predict what happens within N days (1 to {MAX_HORIZON_DAYS})")
            sub.add_argument("--population", default=argparse.SUPPRESS, type=population,
                             help="whom it scores and is judged on: all, buyers, active:DAYS or in_flight:DAYS "
                                  "(without DAYS the window follows the horizon)")
            sub.add_argument("--events", dest="event_types", type=event_types, default=argparse.SUPPRESS,
                             help="comma-separated event types that count")
            sub.add_argument("--max-rating", type=rating, default=argparse.SUPPRESS,
                             help="a review rated at most this counts too (none: no review counts)")
            sub.add_argument("--churn", action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                             help="predict the absence of any purchase within the horizon")
            sub.add_argument("--description", default=argparse.SUPPRESS)

    def handle(self, *, action=None, **options):
        if action is None:
            return self._list()
        name = options["name"]
        # Only what was given changes: the options left out are not in `options` at all.
        fields = {k: options[k] for k in ("horizon_days", "event_types", "max_rating", "churn", "description")
                  if k in options}
        if "population" in options:
            fields["population"], fields["population_days"] = options["population"]
        if fields.get("churn"):
            fields["event_types"], fields["max_rating"] = [], None
        try:
            if action == "add":
                target = target_add(name=name, **fields)
                self.stdout.write(f"{name}: defined; `manage.py train --target {name}` makes its first model")
            else:
                target = Target.objects.filter(name=name).first()
                if target is None:
                    raise CommandError(f"no target {name!r}; defined: {', '.join(self._names())}. "
                                       f"Define one with `targets add {name} --horizon-days N ...`")
                self.stdout.write(str(target_change(target=target, **fields)))
        except TargetError as error:
            raise CommandError(str(error)) from error
        self._list([target.name])

    def _names(self) -> list[str]:
        return list(Target.objects.values_list("name", flat=True))

    def _list(self, names: list[str] | None = None) -> None:
        targets = Target.objects.all() if names is None else Target.objects.filter(name__in=names)
        champions = {v.target: v for v in ModelVersion.objects.filter(status=ModelVersion.Status.CHAMPION)}
        for target in targets:
            definition = target.definition()
            champion = champions.get(target.name)
            self.stdout.write(f"{target.name}")
            self.stdout.write(f"  counts      {definition.counts_label}")
            self.stdout.write(f"  population  {definition.population_label}")
            self.stdout.write("  served by   " + (
                "no champion yet: the next `manage.py score` or `train` makes one" if champion is None
                else f"#{champion.pk} {champion.get_kind_display()}: {champion.metrics.get('chosen_because', '')}"))
            if champion is not None:
                self.stdout.write(f"  promised    {champion.promised}")
                self.stdout.write(f"  delivered   {champion.delivered}")
