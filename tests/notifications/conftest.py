from __future__ import annotations

import hashlib
import hmac
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@pytest.fixture
def receiver(settings):
    """A webhook receiver on 127.0.0.1 that checks requests as a careful receiver would: the
    signature (with `secret`, set by the test) over timestamp.body, and a timestamp no more than
    five minutes from its own clock (moved by `skew`). It answers 401 to a request that fails
    either check, else `status` (with a `Location` header when `location` is set), and records
    every request with its verdict. `drip`: seconds between the ten bytes of a 200's body, for a
    receiver that answers at once and then trickles."""
    settings.PULSE_HTTP_ALLOWLIST = ["127.0.0.1"]
    received: list[dict] = []
    answer = {"status": 204, "secret": "", "skew": 0, "location": "", "drip": 0.0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            timestamp = self.headers.get("X-Pulse-Timestamp", "")
            expected = "sha256=" + hmac.new(answer["secret"].encode(), timestamp.encode() + b"." + body,
                                            hashlib.sha256).hexdigest()
            signed = hmac.compare_digest(self.headers.get("X-Pulse-Signature", ""), expected)
            fresh = timestamp.isdigit() and abs(time.time() + answer["skew"] - int(timestamp)) <= 300
            received.append({"headers": dict(self.headers), "body": body, "signed": signed, "fresh": fresh})
            if answer["drip"] and signed and fresh:
                self._drip()
                return
            self.send_response(answer["status"] if signed and fresh else 401)
            if answer["location"]:
                self.send_header("Location", answer["location"])
            self.end_headers()

        def _drip(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "10")
            self.end_headers()
            try:
                for _ in range(10):
                    self.wfile.write(b".")
                    self.wfile.flush()
                    time.sleep(answer["drip"])
            except OSError:
                pass  # the client hung up: what a delivery that does not read the body does

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"url": f"http://127.0.0.1:{server.server_address[1]}/hook", "received": received, "answer": answer}
    server.shutdown()
    server.server_close()
