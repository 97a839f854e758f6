"""A public (ingest) key reads and does nothing for a customer without the token the shop's server signs for them.

Each storefront route is called over real HTTP as an outsider who holds the public key would: without a
token, with a token for somebody else, forged, expired or too long-lived, and signed by another key.
"""

import hashlib
import hmac
import importlib.util
import subprocess
import time
import uuid

import pytest

from behavior.api.auth import CUSTOMER_TOKEN_HEADER
from behavior.api.tokens import customer_token
from behavior.models import ApiKey
from behavior.services.api_keys import api_key_create, api_key_token_secret_rotate
from support.models import Ticket
from tests.conftest import Api
from tests.factories import event_payload, shop_with_history

pytestmark = pytest.mark.django_db(transaction=True)

# What each storefront call answers when it is allowed, and what of the customer it would give away.
ROUTES = {
    "placements": ("GET", "customers/{customer}/placements?slot=home", None),
    "help": ("GET", "customers/{customer}/help", None),
    "help ack": ("POST", "customers/{customer}/help/{ticket}/ack", None),
    "open a ticket": ("POST", "customers/{customer}/tickets",
                      {"subject": "Where is it?", "message": "My parcel is late.", "request_id": "{request}"}),
}


@pytest.fixture
def shop(live_server):
    history = shop_with_history("alice", "bob")
    key, raw = api_key_create(name="storefront", scopes=[ApiKey.Scope.INGEST])
    return history, key, Api(live_server.url, raw)


def _call(api: Api, route: str, history: dict, customer: str, token: str | None):
    method, path, body = ROUTES[route]
    path = path.format(customer=customer, ticket=history["help"][customer])
    json = body and {**body, "request_id": str(uuid.uuid4())}
    headers = {CUSTOMER_TOKEN_HEADER: token} if token is not None else {}
    return api.request(method, path, json=json, headers=headers)


def _secrets_of(history: dict, customer: str) -> list[str]:
    return [history["coupons"][customer], f"order-{customer}", "About your order", '"ticket"']


@pytest.mark.parametrize("route", ROUTES)
def test_a_public_key_alone_reads_nothing_and_does_nothing_for_anyone(shop, route):
    history, key, api = shop
    tickets_before = Ticket.objects.count()
    now = time.time()
    refusals = {
        "no token": None,
        "empty": "",
        "alice's token": customer_token(secret=key.token_secret, customer_id="alice"),
        "forged": f"{int(now) + 600}.{'0' * 64}",
        # Right but for its last hex digit: every digit of the signature counts, not a prefix of it.
        "one digit off": (lambda right: right[:-1] + ("0" if right[-1] != "0" else "1"))(
            customer_token(secret=key.token_secret, customer_id="bob")),
        "expired": customer_token(secret=key.token_secret, customer_id="bob", lifetime=-1),
        "for a week": customer_token(secret=key.token_secret, customer_id="bob", lifetime=7 * 86_400),
        "another key's": customer_token(secret=ApiKey.generate_token_secret(), customer_id="bob"),
        "garbage": "é.\xff",
    }

    for what, token in refusals.items():
        answer = _call(api, route, history, "bob", token)
        assert answer.status_code == 403, (what, answer.text)
        assert not any(secret in answer.text for secret in _secrets_of(history, "bob")), what
        assert "customer token" in answer.json()["detail"], (what, answer.text)

    assert Ticket.objects.count() == tickets_before
    assert Ticket.objects.get(pk=history["help"]["bob"]).acknowledged_at is None
    allowed = _call(api, route, history, "bob", customer_token(secret=key.token_secret, customer_id="bob"))
    assert allowed.status_code in (200, 201), allowed.text


def test_the_storefront_sees_its_customer_with_their_token(shop):
    history, key, api = shop
    token = customer_token(secret=key.token_secret, customer_id="alice")

    placements = api.get("customers/alice/placements?slot=home", headers={CUSTOMER_TOKEN_HEADER: token}).json()
    help_messages = api.get("customers/alice/help", headers={CUSTOMER_TOKEN_HEADER: token}).json()

    assert [p["offer"]["code"] for p in placements["placements"]] == [history["coupons"]["alice"]]
    assert [m["ticket"] for m in help_messages["messages"]] == [history["help"]["alice"]]


def test_a_server_key_needs_no_customer_token_and_a_rotated_secret_ends_old_tokens(shop, make_api):
    history, key, api = shop
    server = make_api(ApiKey.Scope.INGEST, ApiKey.Scope.READ)
    assert server.get("customers/bob/help").status_code == 200

    old = customer_token(secret=key.token_secret, customer_id="bob")
    api_key_token_secret_rotate(key=key)
    assert _call(api, "help", history, "bob", old).status_code == 403
    assert _call(api, "help", history, "bob", customer_token(secret=key.token_secret, customer_id="bob")
                 ).status_code == 200


def test_the_readme_shell_line_mints_a_token_the_api_accepts(shop, readme_block):
    history, key, api = shop
    line = readme_block("# foresight: mint a customer token (shell)").splitlines()[1]

    minted = subprocess.run(["bash", "-c", line], env={"TOKEN_SECRET": key.token_secret, "CUSTOMER_ID": "bob",
                                                        "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, check=True).stdout.strip()

    assert _call(api, "help", history, "bob", minted).status_code == 200
    assert _call(api, "help", history, "alice", minted).status_code == 403


def test_the_readme_python_mints_a_token_the_api_accepts(shop, readme_block, tmp_path):
    history, key, api = shop
    (tmp_path / "mint.py").write_text(readme_block("# foresight: mint a customer token (python)"))
    spec = importlib.util.spec_from_file_location("mint", tmp_path / "mint.py")
    mint = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mint)  # the README's code, as a shop's server would hold it

    minted = mint.customer_token(key.token_secret, "bob")

    assert _call(api, "placements", history, "bob", minted).status_code == 200
    assert _call(api, "placements", history, "alice", minted).status_code == 403


def _signed(secret: str, text: str) -> str:
    """The README's recipe, by hand: the hex HMAC-SHA256 of `text` under the token secret."""
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


def test_a_token_is_accepted_in_its_one_written_form_only(shop):
    history, key, api = shop
    expires = int(time.time()) + 600
    signature = _signed(key.token_secret, f"bob.{expires}")
    other_forms = {
        "an empty signature": f"{expires}.",
        "no signature": f"{expires}",
        "a leading zero": f"0{expires}.{signature}",
        "a leading zero, signed so": f"0{expires}.{_signed(key.token_secret, f'bob.0{expires}')}",
        "a plus sign": f"+{expires}.{signature}",
        "a space before the dot": f"{expires} .{signature}",
        "a space after the dot": f"{expires}. {signature}",
        "capital hex": f"{expires}.{signature.upper()}",
        "half a signature": f"{expires}.{signature[:32]}",
        "more after it": f"{expires}.{signature}.{signature}",
    }

    for what, token in other_forms.items():
        answer = _call(api, "help", history, "bob", token)
        assert answer.status_code == 403, (what, answer.text)
    assert _call(api, "help", history, "bob", f"{expires}.{signature}").status_code == 200


def test_a_token_minted_before_an_erasure_opens_only_what_came_after(shop, make_api):
    """As the README says: the token vouches for the shop's customer id, and after an erasure that id holds only
    what the storefront sent since."""
    history, key, api = shop
    token = customer_token(secret=key.token_secret, customer_id="bob")
    assert make_api(ApiKey.Scope.ADMIN).delete("customers/bob").status_code == 204
    assert api.post("events", json=[event_payload(customer="bob")]).status_code == 200

    answer = _call(api, "help", history, "bob", token)

    assert answer.status_code == 200 and answer.json()["messages"] == []
    assert not any(secret in answer.text for secret in _secrets_of(history, "bob"))
