#!/usr/bin/env python3
"""An SMTP server for the alerting tests, built on aiosmtpd.

With --cert and --key it offers STARTTLS (and with --require-tls refuses mail before it);
with --user and --password it offers AUTH PLAIN and LOGIN, only after STARTTLS, and
checks the credentials. With --reply-delay-ms the server records a message, then waits that
long before it answers 250 (a slow server). Every accepted message (with when it arrived, in Unix milliseconds) and every AUTH attempt is one JSON line in
--log. Binds port 0 on --host (a loopback address) and writes the port it got to --ready.
"""
import argparse
import asyncio
import json
import ssl
import sys
import time

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from fixture_support import announce_port, exit_with_parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--log", required=True)
    parser.add_argument("--ready", required=True)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--require-tls", action="store_true")
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--reply-delay-ms", type=int, default=0)
    args = parser.parse_args()
    if not args.host.startswith("127."):
        sys.exit("smtp_server: --host must be a loopback address (127.0.0.0/8)")
    exit_with_parent()

    def record(entry: dict) -> None:
        with open(args.log, "a", encoding="utf-8") as log:
            log.write(json.dumps(entry) + "\n")

    class Recorder:
        async def handle_DATA(self, server, session, envelope):
            record({
                "event": "message",
                "received_at_unix_ms": int(time.time() * 1000),
                "mail_from": envelope.mail_from,
                "rcpt_tos": envelope.rcpt_tos,
                "mail_options": envelope.mail_options,
                "data": envelope.content.decode("utf-8", "replace"),
                "tls": session.ssl is not None,
                "authenticated": bool(session.authenticated),
            })
            if args.reply_delay_ms > 0:
                await asyncio.sleep(args.reply_delay_ms / 1000)
            return "250 2.0.0 recorded"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and args.user is not None
            and auth_data.login.decode() == args.user
            and auth_data.password.decode() == args.password
        )
        record({"event": "auth", "mechanism": mechanism, "success": ok, "tls": session.ssl is not None})
        return AuthResult(success=ok, handled=False)

    tls_context = None
    if args.cert:
        tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls_context.load_cert_chain(args.cert, args.key)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    def factory():
        return SMTP(
            Recorder(),
            hostname="specola-test-smtp",
            tls_context=tls_context,
            require_starttls=args.require_tls,
            authenticator=authenticator if args.user else None,
            auth_require_tls=True,
            loop=loop,
        )

    server = loop.run_until_complete(loop.create_server(factory, host=args.host, port=0))
    port = server.sockets[0].getsockname()[1]
    announce_port(args.ready, port)
    loop.run_forever()


if __name__ == "__main__":
    main()
