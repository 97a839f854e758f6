"""The servers' request logs mask customer ids and coupon codes, as the app's logs do (behavior/redaction.py)."""

import http.client
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
# Each call also with a letter of its route percent-encoded, as sent: the server decodes it and serves the route.
CALLS = [("GET", "/api/v1/customers/alice@example.com/placements?slot=home"),
         ("POST", "/api/v1/offers/FS-7Q2K9M/redeem"),
         ("GET", "/api/v1/%63ustomers/alice@example.com/placements?slot=home"),
         ("POST", "/api/v1/%6Fffers/FS-7Q2K9M/redeem")]
MASKED = ['"GET /api/v1/customers/***/placements?slot=home HTTP/1.1" 40',
          '"POST /api/v1/offers/***/redeem HTTP/1.1" 40',
          '"GET /api/v1/%63ustomers/***/placements?slot=home HTTP/1.1" 40',
          '"POST /api/v1/%6Fffers/***/redeem HTTP/1.1" 40']


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _serve_and_call(command: list[str], port: int, log: Path) -> str:
    """Starts a server process, makes CALLS once it listens, stops it; returns everything it wrote."""
    db = connection.settings_dict
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test",
           "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
           "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as output:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, log.read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the server did not listen within 30 s:\n" + log.read_text()
                time.sleep(0.2)
        answers = [_raw_call(port, method, path) for method, path in CALLS]
        assert all(400 <= status < 500 for status in answers), answers  # no key: refused, and logged
        # A server writes its request line after the answer has gone out: wait for it rather than race it.
        deadline = time.monotonic() + 10
        while log.read_text().count('HTTP/1.1" ') < len(CALLS) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        server.terminate()
        server.wait(timeout=15)
    return log.read_text()


def _raw_call(port: int, method: str, path: str) -> int:
    """The call's status; its path is sent as written (requests would decode %63 to c first)."""
    server = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        server.request(method, path)
        return server.getresponse().status
    finally:
        server.close()


@pytest.mark.django_db
def test_gunicorns_access_log_redacts_ids_and_codes(tmp_path):
    port = _free_port()
    text = _serve_and_call([sys.executable, "-m", "gunicorn", "-c", "python:config.gunicorn", "--bind",
                            f"127.0.0.1:{port}", "--workers", "1", "--access-logfile", "-",
                            "--no-control-socket"],  # its socket is one per user: others' gunicorns may run
                           port, tmp_path / "log")

    lines = [line for line in text.splitlines() if 'HTTP/1.1" ' in line]
    assert len(lines) == len(CALLS), text  # the access log is on, one line per call
    assert all(masked in line for masked, line in zip(MASKED, lines, strict=True)), text
    assert "alice" not in text and "FS-7Q2K9M" not in text


@pytest.mark.django_db
def test_runservers_request_lines_redact_ids_and_codes(tmp_path):
    port = _free_port()
    text = _serve_and_call([sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"], port,
                           tmp_path / "log")

    assert all(masked in text for masked in MASKED), text
    assert "alice" not in text and "FS-7Q2K9M" not in text
