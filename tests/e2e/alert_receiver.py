"""A webhook receiver for the alert test (tests/e2e/test_alerting.py): every POST body Alertmanager sends is appended,
as one JSON line with the time it arrived, to the file named on the command line, which the test reads on the host.
Standard library only: it runs in the stack's python image, on the stack's network (tests/e2e/compose.test.yaml)."""

from __future__ import annotations

import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RECORD = sys.argv[1]


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        with open(RECORD, "a", encoding="utf-8") as record:
            record.write(json.dumps({"received_at": time.time(), "path": self.path, "body": body}) + "\n")
        self.send_response(200)
        self.end_headers()


if __name__ == "__main__":
    ThreadingHTTPServer(("0.0.0.0", 9000), Receiver).serve_forever()
