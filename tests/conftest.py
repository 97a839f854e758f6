import pytest
import requests

from behavior.models import ApiKey
from behavior.services.api_keys import api_key_create


class Api(requests.Session):
    """A real HTTP client for the live test server, with an API key."""

    def __init__(self, base_url: str, key: str | None):
        super().__init__()
        self.base_url = base_url.rstrip("/") + "/api/v1/"
        if key:
            self.headers["Authorization"] = f"Bearer {key}"

    def request(self, method, url, *args, **kwargs):
        return super().request(method, self.base_url + url.lstrip("/"), *args, **kwargs)


@pytest.fixture
def make_api(live_server):
    """make_api("ingest", "read") -> a client whose key has those scopes; make_api() has no key."""

    def make(*scopes: str) -> Api:
        raw = api_key_create(name="test " + "+".join(scopes), scopes=list(scopes))[1] if scopes else None
        return Api(live_server.url, raw)

    return make


@pytest.fixture
def ingest_api(make_api) -> Api:
    return make_api(ApiKey.Scope.INGEST)


@pytest.fixture
def admin_api(make_api) -> Api:
    return make_api(ApiKey.Scope.ADMIN)
