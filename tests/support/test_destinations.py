"""Webhooks (the helpdesk's here) reach public addresses only, and a receiver's answer comes back as a short excerpt."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils.html import escape

from behavior.webhooks import EXCERPT
from support.models import HelpdeskSettings, OutboxMessage
from support.services.outbox import outbox_deliver
from support.services.proactive import tickets_open_proactively
from tests.support.conftest import NOW, late_order, support_rule

pytestmark = pytest.mark.sqlite

ADD = "/admin/support/helpdesksettings/add/"
FORM = {"enabled": "on", "secret": "a-shared-secret", "retry_base_seconds": 10}


@pytest.fixture
def public_only(settings):
    """The rule as deployed: the test settings allow private addresses for their receiver on 127.0.0.1."""
    settings.FORESIGHT_WEBHOOKS_ALLOW_PRIVATE = False


@pytest.mark.parametrize(("url", "kind"), [
    ("http://127.0.0.1:8080/hooks", "loopback"),
    ("http://localhost/hooks", "loopback"),  # a name: what it resolves to counts
    ("http://[::1]/hooks", "loopback"),
    ("http://[::ffff:127.0.0.1]/hooks", "loopback"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),  # cloud metadata
    ("https://10.0.0.5/hooks", "private"),
    ("https://192.168.1.20/hooks", "private"),
    ("https://[fd00::5]/hooks", "private"),
    ("http://0.0.0.0:8000/", "unspecified"),
    ("http://224.0.0.251/", "multicast"),
    ("http://100.64.0.1/", "non-public"),  # carrier-grade NAT
])
def test_the_admin_refuses_a_url_that_leads_inside_naming_the_field(admin_client, public_only, url, kind):
    page = admin_client.post(ADD, {**FORM, "url": url}).content.decode()

    assert not HelpdeskSettings.objects.exists()
    # The message is the url field's own error, and says what kind of address it is and what allows it.
    start = page.index('id="id_url_error"')
    url_error = page[start:page.index("</ul>", start)]
    assert f"{kind} address; webhooks must go to a public one" in url_error
    assert escape("(FORESIGHT_WEBHOOKS_ALLOW_PRIVATE=1 allows others)") in url_error


def test_a_public_address_is_taken_and_the_setting_allows_private_ones(admin_client, settings, public_only):
    assert admin_client.post(ADD, {**FORM, "url": "https://1.1.1.1/hooks"}).status_code == 302

    settings.FORESIGHT_WEBHOOKS_ALLOW_PRIVATE = True
    change = f"/admin/support/helpdesksettings/{HelpdeskSettings.current().pk}/change/"
    assert admin_client.post(change, {**FORM, "url": "http://10.0.0.5/hooks"}).status_code == 302
    assert HelpdeskSettings.current().url == "http://10.0.0.5/hooks"


def test_delivery_checks_the_address_it_connects_to(risky_customers, helpdesk, settings):
    """A URL stored while it was public (or allowed) is checked again on sending: DNS can change."""
    desk = helpdesk()
    late_order(risky_customers([0.9])[0], "order-1", days_late=2)
    support_rule()
    tickets_open_proactively(now=NOW)
    settings.FORESIGHT_WEBHOOKS_ALLOW_PRIVATE = False

    assert outbox_deliver(now=NOW).failed == 1
    message = OutboxMessage.objects.get()
    assert message.last_error.startswith("The URL leads to 127.0.0.1, a loopback address")
    assert desk.received == [] and desk.refused == []  # nothing was sent

    settings.FORESIGHT_WEBHOOKS_ALLOW_PRIVATE = True
    assert outbox_deliver(now=message.next_attempt_at).delivered == 1


INTERNAL_PAGE = (
    "<!DOCTYPE html><html><head><title>502 Bad Gateway</title><style>body { color: red }</style>"
    "<script>var token = 'script-secret';</script></head>\r\n<body>\n\n<h1>Bad   Gateway</h1>\x1b[31m"
    "<p>upstream\u202eesrever &amp; more\x00</p>" + "<p>filler text</p>" * 200
    + "<p>db-password=hunter2</p></body></html>"
)


@pytest.fixture
def gateway(db):
    """A receiver that answers every webhook with a long internal HTML page, as a misrouted proxy would."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            body = INTERNAL_PAGE.encode()
            self.send_response(502)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    HelpdeskSettings.objects.update_or_create(pk=1, defaults={
        "enabled": True, "url": f"http://127.0.0.1:{server.server_address[1]}/hooks", "secret": "s"})
    yield
    server.shutdown()
    server.server_close()


def test_only_a_short_clean_excerpt_of_an_answer_is_kept(risky_customers, gateway):
    late_order(risky_customers([0.9])[0], "order-1", days_late=2)
    support_rule()
    tickets_open_proactively(now=NOW)
    assert outbox_deliver(now=NOW).failed == 1

    error = OutboxMessage.objects.get().last_error
    assert error.startswith("HTTP 502: 502 Bad Gateway Bad Gateway [31m upstream esrever & more filler text")
    assert len(error) <= len("HTTP 502: ") + EXCERPT and error.endswith("…")
    assert not any(c in error for c in "<>\r\n\x1b\x00\u202e") and "  " not in error
    assert "secret" not in error and "color" not in error and "hunter2" not in error
