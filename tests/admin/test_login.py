"""Guessing an admin password: a username and address pair is locked out after a few wrong ones (django-axes)."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import get_user_model

from tests.admin.conftest import PASSWORD

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/"


@pytest.fixture
def lead(db):
    return get_user_model().objects.create_user(username="lead", password=PASSWORD, is_staff=True)


def _sign_in(client, password: str, address: str = "203.0.113.7", **headers):
    return client.post(LOGIN, {"username": "lead", "password": password, "next": "/admin/"}, REMOTE_ADDR=address,
                       **headers)


def test_sixty_wrong_passwords_then_the_right_one_is_locked_out(client, lead):
    answers = [_sign_in(client, f"guess-{i}", HTTP_X_FORWARDED_FOR=f"198.51.100.{i}").status_code
               for i in range(60)]  # a forged X-Forwarded-For does not make a new client

    assert answers[:settings.AXES_FAILURE_LIMIT - 1] == [200] * (settings.AXES_FAILURE_LIMIT - 1)  # the form again
    assert set(answers[settings.AXES_FAILURE_LIMIT - 1:]) == {429}
    refused = _sign_in(client, PASSWORD)
    assert refused.status_code == 429 and "too many login attempts" in refused.content.decode()
    assert client.get("/admin/").status_code == 302  # still sent to the login page


def test_the_lockout_holds_one_address_and_ends_after_the_cool_off(client, lead):
    for i in range(settings.AXES_FAILURE_LIMIT):
        _sign_in(client, f"guess-{i}")
    assert _sign_in(client, PASSWORD).status_code == 429

    assert _sign_in(client, PASSWORD, address="192.0.2.10").status_code == 302  # the lead at another address
    client.logout()
    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time - settings.AXES_COOLOFF_TIME
                                 - timedelta(seconds=1))
    assert _sign_in(client, PASSWORD).status_code == 302


def test_a_right_password_starts_the_count_again(client, lead):
    for _ in range(3):
        for i in range(settings.AXES_FAILURE_LIMIT - 1):
            assert _sign_in(client, f"typo-{i}").status_code == 200
        assert _sign_in(client, PASSWORD).status_code == 302
        client.logout()
