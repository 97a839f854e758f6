"""Campaign pages against the shop's size: each campaign page's time beside the campaign list's, at 100,000 customers.

A campaign's page used to compute its audience (count, preview, expected cost) from every customer's events on
each request: 2-3 s at 20,000 customers, 12.6 s at 100,000 (issue 27). It now shows the figures the last
evaluation or a background computation kept (campaigns.models.CampaignAudience). This bench builds a shop of
`--customers` (`simulate_shop --days 90`; a copy of `--template` when it holds that many), a draft and an active
price offer whose conditions read features built from events (the dearest kind), and times in-process through
Django's test client (middleware, admin, templates; no network):

- the baseline: the campaign list;
- the change page of the draft and of the active campaign, and the list with both;
- once each, what the page did before and now happens in the background: the preview computed on the request
  (campaign_preview), the draft's background computation and the active campaign's evaluation.

Goal: every page within 1 s (median of `--repeat` after one warm-up) and within 10x the list of the same run.
Exit status 1 when a page misses it. About 2 minutes on 2 cores at 100,000 customers (a third of it simulating).

    .venv/bin/python bench/campaign_pages.py [--customers N] [--repeat R] [--template DB] [--keep]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script, the project root is not on the path

from bench._common import machine_facts, number, redacted  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/foresight_bench_pages"
DEFAULT_TEMPLATE = "foresight_bench_pages_template"
GOAL_SECONDS = 1.0
GOAL_RATIO = 10.0
# Both read features built from every customer's events: what the page used to compute on each request.
CONDITION = {"all": [{"field": "feature.orders", "op": "gte", "value": 2},
                     {"field": "customer.marketing_consent", "op": "eq", "value": True}]}


def database_prepare(url: str, template: str, customers: int, keep: bool) -> tuple[str, dict, bool]:
    """Drop and create the bench database, a copy of `template` when it holds `customers`; its source in words, the
    server's facts, and whether the shop is still to simulate."""
    info = conninfo_to_dict(url)
    name = info.get("dbname", "")
    if info.get("host", "127.0.0.1") not in ("127.0.0.1", "localhost", "::1") or "bench" not in name:
        raise SystemExit(f"refusing to drop {redacted(url)}: a local database whose name holds 'bench' only")
    with psycopg.connect(make_conninfo(url, dbname="postgres"), autocommit=True) as connection:
        facts = {s: connection.execute(f"SHOW {s}").fetchone()[0]
                 for s in ("server_version", "shared_buffers", "work_mem", "synchronous_commit")}
        if keep:
            return "the bench database as it was (--keep)", facts, False
        held = None
        if connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [template]).fetchone():
            try:
                with psycopg.connect(make_conninfo(url, dbname=template), autocommit=True) as copy:
                    held = copy.execute("SELECT count(*) FROM behavior_customer").fetchone()[0]
            except psycopg.Error:
                held = None
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if held == customers:
            connection.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name),
                                                                              sql.Identifier(template)))
            return f"copy of {template}", facts, False
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return "simulate_shop", facts, True


def timed(call, repeat: int) -> list[float]:
    call()  # warm-up: imports, the condition builder's cached values
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5, help="timed requests of each page (after one warm-up)")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL, help="dropped and recreated")
    parser.add_argument("--template", default=DEFAULT_TEMPLATE,
                        help="a database copied when it holds --customers (simulate_shop into it once to reuse)")
    parser.add_argument("--keep", action="store_true", help="reuse the bench database as it is")
    args = parser.parse_args(argv)

    source, server, simulate = database_prepare(args.database_url, args.template, args.customers, args.keep)
    os.environ.update({"DJANGO_SETTINGS_MODULE": "config.settings.local", "DATABASE_URL": args.database_url,
                       "DJANGO_DEBUG": "0"})
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/11")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.management import call_command
    from django.test import Client
    from django.utils import timezone

    from behavior.models import Customer, Event
    from campaigns.models import Campaign, CampaignAudience
    from campaigns.selectors import campaign_preview
    from campaigns.services import campaign_audience_compute, campaign_create, campaigns_evaluate

    call_command("migrate", verbosity=0)
    if simulate:
        print(f"simulating {args.customers:,} customers over {args.days} days ...", file=sys.stderr)
        start = time.perf_counter()
        call_command("simulate_shop", customers=args.customers, days=args.days, seed=args.seed, verbosity=0)
        source = (f"simulate_shop --customers {args.customers} --days {args.days} --seed {args.seed} "
                  f"({time.perf_counter() - start:.0f} s)")
    Campaign.objects.all().delete()
    offer = dict(kind="price_offer", condition=CONDITION, holdout_percent=10, discount_kind="percent",
                 discount_value=10, valid_days=7)
    draft = campaign_create(name="Draft: ten percent for repeat buyers", **offer)
    active = campaign_create(name="Active: ten percent for repeat buyers", **offer)
    active.status = Campaign.Status.ACTIVE
    active.save(update_fields=["status"])

    print("the page's work, once, as the page did it before and in the background now ...", file=sys.stderr)
    once = {}
    start = time.perf_counter()
    preview = campaign_preview(campaign=draft)
    once["campaign_preview on the request (before)"] = time.perf_counter() - start
    start = time.perf_counter()
    stored = campaign_audience_compute(campaign_id=draft.pk)
    once["draft's background computation"] = time.perf_counter() - start
    start = time.perf_counter()
    campaigns_evaluate(now=timezone.now())
    once["active campaign's evaluation (assigns, keeps the figures)"] = time.perf_counter() - start
    assert stored is not None and stored.audience == preview.audience, (stored, preview)

    user, _ = get_user_model().objects.get_or_create(username="bench-campaign-manager", defaults={"is_staff": True})
    user.groups.add(Group.objects.get(name="Campaign managers"))
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)

    def page(url: str):
        def get():
            answer = client.get(url)
            assert answer.status_code == 200, (url, answer.status_code)
            return answer
        return get

    pages = {"campaign list (baseline)": "/admin/campaigns/campaign/",
             "draft campaign's page": f"/admin/campaigns/campaign/{draft.pk}/change/",
             "active campaign's page": f"/admin/campaigns/campaign/{active.pk}/change/"}
    print(f"timing each page {args.repeat} times ...", file=sys.stderr)
    times = {name: timed(page(url), args.repeat) for name, url in pages.items()}
    said = {name: CampaignAudience.objects.get(campaign=c) for name, c in (("draft", draft), ("active", active))}

    facts = machine_facts(server)
    print(f"\ncampaign pages at {Customer.objects.count():,} customers, {Event.objects.count():,} events "
          f"({source}; {redacted(args.database_url)})")
    print(f"machine: {facts['cores']} cores, {facts['cpu']}, load {facts['load']}, PostgreSQL {facts['postgresql']}")
    print(f"audience: draft {said['draft'].audience:,} customers, active {said['active'].audience:,} "
          f"(figures kept by the background computation and the evaluation)\n")
    baseline = statistics.median(times["campaign list (baseline)"])
    print(f"{'page':34} {'median s':>9} {'max s':>7} {'x list':>7}  goal (<= {GOAL_SECONDS:g} s, <= {GOAL_RATIO:g}x)")
    missed = []
    for name, seconds in times.items():
        median = statistics.median(seconds)
        ratio = median / baseline
        met = median <= GOAL_SECONDS and ratio <= GOAL_RATIO
        if not met:
            missed.append(name)
        print(f"{name:34} {median:9.3f} {max(seconds):7.3f} {ratio:7.2f}  {'met' if met else 'MISSED'}")
    print("\nonce, off the request now (seconds, and x the list):")
    for name, seconds in once.items():
        print(f"  {name:58} {number(seconds):>7} s {seconds / baseline:9,.0f}x")
    if missed:
        print(f"\nMISSED: {', '.join(missed)}")
        return 1
    print("\nevery campaign page met the goal")
    return 0


if __name__ == "__main__":
    sys.exit(main())
