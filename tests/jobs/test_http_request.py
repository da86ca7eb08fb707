"""`http.request` (and every webhook delivery, through the same check): a request goes to the
address its name resolved to when it was checked, and an address that leads inward is refused,
however it is written."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from jobs.error_codes import JobError
from jobs.handlers.http import check_destination
from jobs.models import Job
from jobs.runner import run_job
from jobs.services import job_submit

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def server():
    """A server on 127.0.0.1 that answers every GET with the Host it was asked for."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f"host={self.headers['Host']}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def dns(monkeypatch):
    """Names of the test's own: `answers[name]` is the list of addresses it answers, one call
    after another (the last one again once they run out)."""
    real = socket.getaddrinfo
    answers: dict[str, list[str]] = {}

    def lookup(host, *args, **kwargs):
        if host in answers:
            queue = answers[host]
            return real(queue.pop(0) if len(queue) > 1 else queue[0], *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    return answers


def test_a_request_goes_to_the_address_checked_when_the_name_answers_another_at_connect_time(
        acme, server, dns, settings):
    settings.PULSE_HTTP_ALLOWLIST = ["127.0.0.1"]
    dns["api.example"] = ["127.0.0.1", "127.0.0.2"]  # the second: loopback, never allow-listed
    job = job_submit(team=acme, handler="http.request", payload={"url": f"http://api.example:{server}/x"},
                     source="api").job
    run_job(job.public_id)

    done = Job.objects.get(pk=job.pk)
    assert (done.status, done.result["status"], done.result["body"]) == (
        Job.Status.COMPLETED, 200, f"host=api.example:{server}")


@pytest.mark.parametrize("address, carried", [
    ("64:ff9b::a9fe:a9fe", "169.254.169.254"),  # NAT64
    ("64:ff9b:1::a00:1", "10.0.0.1"),  # NAT64, local-use prefix
    ("2002:7f00:1::", "127.0.0.1"),  # 6to4
])
def test_a_name_resolving_to_an_ipv6_address_that_carries_an_internal_one_is_refused(dns, address, carried):
    dns["inward.example"] = [address]
    with pytest.raises(JobError) as refused:
        check_destination("https://inward.example/hook")
    assert refused.value.message == (f"inward.example resolves to {address}, which carries {carried}, an internal "
                                     "address; add it to PULSE_HTTP_ALLOWLIST to allow it.")
    assert refused.value.retryable is False
