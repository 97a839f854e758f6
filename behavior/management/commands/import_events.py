import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from behavior.broker import tasks_in_process
from behavior.core import importers
from behavior.core.event_types import EVENT_TYPES
from behavior.services.imports import ImportAborted, ImportReport, events_import
from behavior.tasks import import_events_file

MAPPED_COLUMNS = ("product", "category", "price", "quantity", "order-id", "session", "rating")


class Command(BaseCommand):
    help = (
        "Import events from a file: the Taobao UserBehavior CSV, the Olist CSV folder, or any CSV or "
        "Parquet file with a column mapping. Importing the same file again adds nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path, help="a file, or for Olist the folder of its CSV files")
        parser.add_argument("--format", required=True, choices=importers.FORMATS)
        parser.add_argument("--queue", action="store_true",
                            help="hand the import to a Celery worker (the path must be readable there) and return; "
                                 "with tasks in process, import here")
        parser.add_argument("--strict", action="store_true", help="any bad row aborts the import; nothing is written")
        parser.add_argument("--quiet", action="store_true", help="no progress bar")
        parser.add_argument("--show-problems", type=int, default=20, metavar="N", help="bad rows to list (default 20)")
        parser.add_argument("--chunk-rows", type=int, default=importers.CHUNK_ROWS, help="rows read at a time")
        parser.add_argument("--timezone", help="of times without an offset (mapped: UTC; olist: America/Sao_Paulo)")
        taobao = parser.add_argument_group("taobao")
        taobao.add_argument("--keep-outside-window", action="store_true",
                            help="also import the rows outside 2017-11-25..2017-12-03 (Beijing time)")
        mapped = parser.add_argument_group("mapped: source columns for the event fields")
        mapped.add_argument("--customer", metavar="COL")
        mapped.add_argument("--time", metavar="COL")
        mapped.add_argument("--type", metavar="COL")
        mapped.add_argument("--fixed-type", choices=EVENT_TYPES, metavar="TYPE", help="one event type for every row")
        for name in MAPPED_COLUMNS:
            mapped.add_argument(f"--{name}", metavar="COL")
        mapped.add_argument("--time-format", metavar="FMT", help="strftime format, or 'unix' (default: ISO 8601)")
        mapped.add_argument("--type-map", metavar="A=B,...", help="source values to event types, e.g. pv=product_view")
        mapped.add_argument("--source", help="name that goes into the event ids (default: the file name)")

    def handle(self, path, **options):
        source_options = self._source_options(options)
        if options["queue"] and tasks_in_process():
            self.stderr.write("--queue: Foresight's tasks run in this process (FORESIGHT_TASKS_IN_PROCESS), so the "
                              "import runs here.")
        elif options["queue"]:
            result = import_events_file.delay(str(path.resolve()), options["format"], source_options,
                                              strict=options["strict"])
            self.stdout.write(f"Queued the import as task {result.id}; a Celery worker will run it.")
            return
        try:
            source = importers.open_source(path, options["format"], **source_options)
        except importers.SourceError as error:
            raise CommandError(str(error)) from error
        with tqdm(total=source.total_rows, unit=" rows", unit_scale=True, file=sys.stderr,
                  disable=True if options["quiet"] else None, desc=source.name) as bar:
            try:
                report = events_import(source=source, strict=options["strict"],
                                       max_problems=options["show_problems"], on_progress=bar.update)
            except ImportAborted as aborted:
                report = aborted.report
            except importers.SourceError as error:
                raise CommandError(str(error)) from error
        self._summary(report)
        if not report.written:
            raise CommandError(f"--strict: {report.bad_rows:,} bad row(s); nothing was written")

    def _source_options(self, options) -> dict:
        """What open_source needs, as plain data (it may travel to a Celery worker)."""
        mapping = {name.replace("-", "_"): options[name.replace("-", "_")] for name in MAPPED_COLUMNS}
        mapping.update(customer=options["customer"], time=options["time"], type=options["type"],
                       fixed_type=options["fixed_type"], time_format=options["time_format"],
                       type_map=_type_map(options["type_map"]))
        return {
            "mapping": {name: value for name, value in mapping.items() if value},
            "timezone": options["timezone"],
            "keep_outside_window": options["keep_outside_window"],
            "source": options["source"],
            "chunk_rows": options["chunk_rows"],
        }

    def _summary(self, report: ImportReport) -> None:
        write = self.stdout.write
        stored = "stored" if report.written else "checked (nothing written)"
        write(f"{report.source}: {report.rows_read:,} rows read, {report.new.total():,} events new, "
              f"{report.present.total():,} already present, {report.bad_rows:,} bad rows skipped, "
              f"{report.skipped.total():,} skipped; {stored} in {report.elapsed:.1f} s "
              f"({report.events_per_second:,.0f} events/s)")
        write(f"  {'type':<18}{'read':>10}{'new':>10}{'present':>10}{'bad':>8}{'skipped':>9}")
        for name in sorted(report.read, key=lambda t: -report.read[t]):
            write(f"  {name:<18}{report.read[name]:>10,}{report.new[name]:>10,}{report.present[name]:>10,}"
                  f"{report.bad[name]:>8,}{report.skipped[name]:>9,}")
        for reason, count in report.skip_reasons.items():
            write(f"Skipped {count:,} rows: {reason}")
        if report.bad_rows:
            write(f"Bad rows ({report.bad_rows:,}):")
            for problem in report.problems:
                write(f"  {report.where(problem.row)}: {problem.field + ' ' if problem.field else ''}{problem.message}")
            hidden = report.bad_rows - len({p.row for p in report.problems})
            if hidden > 0:
                write(f"  ... and {hidden:,} more bad rows")


def _type_map(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    pairs = [item.split("=", 1) for item in text.split(",") if item.strip()]
    if any(len(pair) != 2 for pair in pairs):
        raise CommandError(f"--type-map must look like pv=product_view,buy=purchase, not {text!r}")
    return {source.strip(): target.strip() for source, target in pairs}
