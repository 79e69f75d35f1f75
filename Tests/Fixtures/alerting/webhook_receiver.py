#!/usr/bin/env python3
"""A webhook receiver for the alerting tests.

Records every request (path, headers, body, the status it answered, when it arrived in
Unix milliseconds) as one JSON line in
--log, and can answer --fail-status to the first --fail-first requests or hold the first
--slow-first requests for --slow-ms before answering, to test retries and timeouts.
Binds port 0 on --host (a loopback address) and writes the port it got to --ready.
"""
import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from fixture_support import announce_port, exit_with_parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--log", required=True)
    parser.add_argument("--ready", required=True)
    parser.add_argument("--fail-first", type=int, default=0)
    parser.add_argument("--fail-status", type=int, default=500)
    parser.add_argument("--slow-first", type=int, default=0)
    parser.add_argument("--slow-ms", type=int, default=0)
    args = parser.parse_args()
    if not args.host.startswith("127."):
        sys.exit("webhook_receiver: --host must be a loopback address (127.0.0.0/8)")
    exit_with_parent()

    lock = threading.Lock()
    count = [0]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            received_at = int(time.time() * 1000)
            with lock:
                count[0] += 1
                number = count[0]
            status = args.fail_status if number <= args.fail_first else 200
            record = {
                "n": number,
                "path": self.path,
                "headers": {name: value for name, value in self.headers.items()},
                "body": body.decode("utf-8", "replace"),
                "answered": status,
                "slow": number <= args.slow_first,
                "received_at_unix_ms": received_at,
            }
            with lock, open(args.log, "a", encoding="utf-8") as log:
                log.write(json.dumps(record) + "\n")
            if number <= args.slow_first:
                time.sleep(args.slow_ms / 1000)
            answer = b"ok" if status == 200 else b"simulated failure"
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(answer)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *values) -> None:
            sys.stderr.write("webhook_receiver: " + (format % values) + "\n")

    server = ThreadingHTTPServer((args.host, 0), Handler)
    server.daemon_threads = True
    announce_port(args.ready, server.server_address[1])
    server.serve_forever()


if __name__ == "__main__":
    main()
