"""The events read's COPY, on PostgreSQL, fails as Django's errors do: a scoring chunk is retried on a lost
connection (behavior.tasks.score_chunk retries on Django's OperationalError), not failed for good."""

import psycopg
import pytest
from django.db import OperationalError, connection

from behavior.selectors import _copy_out

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_connection_lost_during_the_copy_is_djangos_operational_error():
    assert _copy_out("SELECT %s AS n", [7]).read() == b"7\n"
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    with psycopg.connect(host=connection.settings_dict["HOST"], user=connection.settings_dict["USER"],
                         dbname="postgres", autocommit=True) as killer:
        killer.execute("SELECT pg_terminate_backend(%s)", [pid])

    with pytest.raises(OperationalError):
        _copy_out("SELECT %s AS n", [7])
    connection.close()  # the next test gets a new one
