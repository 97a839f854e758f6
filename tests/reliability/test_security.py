"""Every API route, found in the URL configuration, refuses callers without the scope the README gives it."""

import logging
import os
import re
import secrets
import subprocess
import sys

import pytest
from django.conf import settings
from django.db import DatabaseError, connection
from django.urls import URLPattern, URLResolver, get_resolver

from behavior.api.auth import CUSTOMER_TOKEN_HEADER
from behavior.api.tokens import customer_token
from behavior.api.views import CustomerView, ScopedView
from behavior.models import ApiKey, Customer
from behavior.redaction import RedactIdentifiers
from support.api.views import HelpView

PUBLIC = {"schema", "docs"}  # the OpenAPI document and its page: no data behind them


def _api_views(patterns=None, prefix=""):
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            yield from _api_views(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern) and (prefix + str(pattern.pattern)).startswith("api/"):
            yield prefix + str(pattern.pattern), pattern


API_VIEWS = list(_api_views())


def _example(path: str) -> str:
    """A concrete URL for a route: 1 for an int parameter, a word for the others."""
    path = re.sub(r"<int:\w+>", "1", path)
    return re.sub(r"<(?:\w+:)?(\w+)>", r"x-\1", path).removeprefix("api/v1/")


def _shape(path: str) -> str:
    """A route's path with its parameters blanked, the same for the URL configuration and the README."""
    return re.sub(r"<[^>]+>|\{[^}]+\}", "{}", path.split("?")[0].removeprefix("/"))


# The README's endpoint tables, copied here by hand: the contract the routes are held to, not the views' own words.
# "ingest + customer token" for the storefront's calls for one customer.
DOCUMENTED = {
    ("POST", "api/v1/events"): "ingest",
    ("POST", "api/v1/identify"): "ingest",
    ("GET", "api/v1/customers/{}"): "read",
    ("GET", "api/v1/customers/{}/scores"): "read",
    ("PUT", "api/v1/customers/{}"): "admin",
    ("DELETE", "api/v1/customers/{}"): "admin",
    ("GET", "api/v1/customers/{}/export"): "admin",
    ("POST", "api/v1/products"): "admin",
    ("GET", "api/v1/customers/{}/placements"): "ingest + customer token",
    ("POST", "api/v1/offers/{}/redeem"): "checkout",
    ("GET", "api/v1/customers/{}/help"): "ingest + customer token",
    ("POST", "api/v1/customers/{}/help/{}/ack"): "ingest + customer token",
    ("POST", "api/v1/customers/{}/tickets"): "ingest + customer token",
}
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
README_SCOPES = {
    (method, _shape(path)): scope.strip()
    for method, path, scope in re.findall(r"^\| `([A-Z]+) (/api/v1/\S+)` \| ([^|]+)\|",
                                          (settings.BASE_DIR / "README.md").read_text(), flags=re.MULTILINE)
}
# Every method on every route: what the README does not give a route is refused.
ROUTES = [
    (method.lower(), _example(path), DOCUMENTED.get((method, _shape(path))),
     {m for m, shape in DOCUMENTED if shape == _shape(path)})
    for path, pattern in API_VIEWS if pattern.name not in PUBLIC
    for method in METHODS
]


def test_every_api_view_declares_the_scope_of_each_method():
    for path, pattern in API_VIEWS:
        view = getattr(pattern.callback, "view_class", None)
        assert pattern.name in PUBLIC or (view and issubclass(view, ScopedView) and view.scopes), path
    names = {pattern.name for _, pattern in API_VIEWS}
    assert {"events", "customer-scores", "customer-placements", "offer-redeem"} <= names  # every app's routes


def test_the_readme_documents_every_route_and_no_other():
    assert README_SCOPES == DOCUMENTED
    served = {_shape(path) for path, pattern in API_VIEWS if pattern.name not in PUBLIC}
    assert served == {path for _, path in DOCUMENTED}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("method", "path", "documented", "listed"), ROUTES,
                         ids=[f"{m.upper()} {p}" for m, p, _, _ in ROUTES])
def test_each_route_needs_a_key_with_the_scope_the_readme_gives(make_api, method, path, documented, listed):
    if documented is None:  # not in the README: no key may do it, an admin's neither
        assert getattr(make_api(), method)(path, json={}).status_code == 401
        for scope in ApiKey.Scope.values:
            response = getattr(make_api(scope), method)(path, json={})
            assert response.status_code == 405, (scope, response.text)
            allowed = set(response.headers["Allow"].split(", "))
            assert allowed == listed | ({"HEAD"} if "GET" in listed else set()), response.headers["Allow"]
        return
    scope, _, token = documented.partition(" + ")
    assert scope in ApiKey.Scope.values, f"README gives {documented!r} for {method.upper()} {path}"
    others = [s for s in ApiKey.Scope.values if s not in (scope, ApiKey.Scope.ADMIN)]

    assert getattr(make_api(), method)(path, json={}).status_code == 401
    for other in others:
        response = getattr(make_api(other), method)(path, json={})
        assert response.status_code == 403, (other, response.text)
        assert f"lacks the '{scope}' scope" in response.json()["detail"]
    allowed = make_api(scope)
    if token:
        assert token == "customer token"
        refused = getattr(allowed, method)(path, json={})
        assert refused.status_code == 403 and "customer token" in refused.json()["detail"], refused.text
        [key] = ApiKey.objects.filter(key_hash=ApiKey.hash(allowed.headers["Authorization"].split()[1]))
        allowed.headers[CUSTOMER_TOKEN_HEADER] = customer_token(secret=key.token_secret,
                                                                customer_id=path.split("/")[1])
    assert getattr(allowed, method)(path, json={}).status_code not in (401, 403)
    if method == "get" and others:  # HEAD needs what GET needs
        assert make_api(others[0]).head(path).status_code == 403


@pytest.mark.django_db(transaction=True)
def test_a_method_a_view_offers_without_declaring_its_scope_is_refused_to_every_key(make_api, monkeypatch):
    """A handler added to a view without a scope for it (here a PATCH that erases) serves nobody."""
    monkeypatch.setattr(CustomerView, "patch", CustomerView.delete, raising=False)
    assert make_api(ApiKey.Scope.ADMIN).put("customers/c1", json={}).status_code == 201

    for scope in ApiKey.Scope.values:
        response = make_api(scope).patch("customers/c1", json={})
        assert response.status_code == 405, (scope, response.status_code)
    assert Customer.objects.filter(external_id="c1").exists()


@pytest.mark.django_db(transaction=True)
def test_a_view_that_does_not_say_it_acts_for_nobody_needs_the_customers_token(make_api, monkeypatch):
    """A customer's route whose view forgot to say it acts for the customer still wants their token."""
    monkeypatch.delattr(HelpView, "customer_bound")
    Customer.objects.create(external_id="c1")

    response = make_api(ApiKey.Scope.INGEST).get("customers/c1/help")

    assert response.status_code == 403 and "customer token" in response.json()["detail"], response.text


def test_the_production_settings_pass_the_deployment_checks():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.production",
           "SECRET_KEY": secrets.token_urlsafe(50), "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
           "ALLOWED_HOSTS": "shop.example", "DATABASE_URL": "postgres://foresight@db.example:5432/foresight"}
    env.pop("FORESIGHT_TASKS_IN_PROCESS", None)
    checked = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                             env=env, capture_output=True, text=True, cwd=settings.BASE_DIR)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "no issues" in checked.stdout


@pytest.mark.django_db(transaction=True)
def test_request_logs_name_no_customer_or_coupon(make_api, app_log):
    api = make_api(ApiKey.Scope.ADMIN)
    api.get("customers/alice@example.com")  # 404s are logged with their path
    api.get("customers/o'brien lee@example.com/scores")  # logged decoded: a quote and a space
    api.post("offers/SECRETCODE23/redeem", json={})

    assert "Not Found: /api/v1/customers/***" in app_log.getvalue()
    for secret in ("alice", "brien", "lee@", "SECRETCODE23"):
        assert secret not in app_log.getvalue(), app_log.getvalue()
    line = '"GET /api/v1/customers/o%27brien?slot=home HTTP/1.1" 200 "GET /api/v1/offers/C0DE HTTP/1.1"'
    access = logging.LogRecord("gunicorn.access", logging.INFO, "", 0, line, (), None)
    RedactIdentifiers().filter(access)
    assert access.getMessage() == line.replace("o%27brien", "***").replace("C0DE", "***")


@pytest.mark.django_db(transaction=True)
def test_database_errors_are_logged_without_the_rows_they_quote(app_log):
    Customer.objects.create(external_id="alice@example.com")
    log = logging.getLogger("behavior")
    for statement, params in [("INSERT INTO behavior_customer (external_id, attributes, marketing_consent, created_at,"
                               " updated_at) VALUES (%s, '{}', false, now(), now())", ["alice@example.com"]),
                              ("SELECT %s::integer", ["bob@example.com"])]:
        try:
            with connection.cursor() as cursor:
                cursor.execute(statement, params)
        except DatabaseError:
            log.exception("while storing")  # as an uncaught error's traceback is logged

    logged = app_log.getvalue()
    assert logged.count("while storing") == 2 and "IntegrityError" in logged and "DataError" in logged
    assert 'unique constraint "behavior_customer_external_id_key"' in logged  # what went wrong stays
    assert "alice" not in logged and "bob" not in logged, logged  # PostgreSQL's DETAIL and the bad text go


@pytest.mark.django_db
def test_the_admin_refuses_weak_passwords(admin_client):
    from django.contrib.auth import get_user_model

    weak = admin_client.post("/admin/auth/user/add/", {"username": "marta", "password1": "a", "password2": "a",
                                                       "usable_password": "true"})
    assert weak.status_code == 200 and "This password is too short" in weak.content.decode()
    assert not get_user_model().objects.filter(username="marta").exists()

    strong = "rhubarb-Lantern-93-quiet"
    admin_client.post("/admin/auth/user/add/", {"username": "marta", "password1": strong, "password2": strong,
                                                "usable_password": "true"})
    assert get_user_model().objects.get(username="marta").check_password(strong)


def test_a_celery_worker_keeps_the_logs_masking_filter(tmp_path):
    from config.celery import app

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        app.log.setup(loglevel="INFO")  # what a worker and beat run when they start
        writers = [h for h in root.handlers if type(h) is logging.StreamHandler]  # not pytest's captures
        assert writers and all(any(isinstance(f, RedactIdentifiers) for f in h.filters) for h in writers), writers

        app.log.already_setup = False
        app.log.setup(loglevel="WARNING", logfile=str(tmp_path / "worker.log"))  # --loglevel, --logfile
        logging.getLogger("behavior").warning("Not Found: /api/v1/customers/alice@example.com")
        logging.getLogger("behavior").info("not at this level")
    finally:
        root.handlers, root.level = handlers, level
    assert (tmp_path / "worker.log").read_text().endswith("behavior: Not Found: /api/v1/customers/***\n")
