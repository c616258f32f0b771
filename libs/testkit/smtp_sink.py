"""An SMTP server for tests: stores what it accepts as JSON lines and obeys a rules file.

Started by ecrm_testkit::smtp::SmtpSink; runs on Debian's python3-aiosmtpd.

Rules file (re-read at every RCPT TO when it changed):
    {"reject": {"<address or *>": {"code": 550, "message": "...", "times": null, "id": 1,
                                   "drop": null}},
     "hold": false}
A rule with "drop" closes the connection without answering instead: at RCPT TO ("rcpt"),
once the data is in but before it is kept ("data"), or once it is kept, before the 250
("after_data").
"""

import argparse
import asyncio
import json
import os
import ssl
import sys
import threading

from aiosmtpd.smtp import SMTP

HOLD_POLL_SECONDS = 0.02


class Rules:
    """The rules file, re-read only when its stat changed (the writer bumps its mtime)."""

    def __init__(self, path):
        self.path = path
        self.key = None
        self.reject = {}
        self.hold = False

    def refresh(self):
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self.key, self.reject, self.hold = None, {}, False
            return
        key = (st.st_mtime_ns, st.st_ino, st.st_size)
        if key == self.key:
            return
        try:
            with open(self.path, encoding="utf-8") as f:
                rules = json.load(f)
        except (OSError, ValueError) as e:
            # Writers rename a complete file into place; a broken one is a test bug: keep the
            # old rules and say so.
            print(f"smtp sink: unreadable rules file: {e}", file=sys.stderr, flush=True)
            return
        self.key = key
        self.reject = {k.lower(): v for k, v in (rules.get("reject") or {}).items()}
        self.hold = bool(rules.get("hold"))


class Handler:
    def __init__(self, args):
        self.rules = Rules(args.rules)
        self.count_only = args.count_only
        self.out = open(args.out, "a", encoding="utf-8")
        self.seen = open(args.rcpt_seen, "a", encoding="utf-8")
        # How many RCPTs each limited reject rule has answered, by rule id: kept across rule
        # reloads so adding another rule does not renew an old one.
        self.used = {}

    def rule_for(self, address):
        reject = self.rules.reject
        return reject.get(address.lower()) or reject.get("*")

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        self.seen.write(address + "\n")
        self.seen.flush()
        self.rules.refresh()
        while self.rules.hold:
            await asyncio.sleep(HOLD_POLL_SECONDS)
            self.rules.refresh()
        rule = self.rule_for(address)
        if rule is not None and rule.get("drop") in (None, "rcpt") and self.use(rule):
            if rule.get("drop") == "rcpt":
                server.transport.close()
            return f"{int(rule.get('code', 550))} {rule.get('message', 'rejected')}"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    def use(self, rule):
        """Whether the rule applies this time (its `times` not used up), counting it if so."""
        times = rule.get("times")
        key = rule.get("id", json.dumps(rule, sort_keys=True))
        if times is None or self.used.get(key, 0) < times:
            self.used[key] = self.used.get(key, 0) + 1
            return True
        return False

    def drop_in_data(self, envelope):
        """The drop rule ("data" or "after_data") of the session's first recipient, if it applies now."""
        self.rules.refresh()
        rule = self.rule_for(envelope.rcpt_tos[0]) if envelope.rcpt_tos else None
        if rule is not None and rule.get("drop") in ("data", "after_data") and self.use(rule):
            return rule["drop"]
        return None

    async def handle_DATA(self, server, session, envelope):
        drop = self.drop_in_data(envelope)
        if drop == "data":
            server.transport.close()
            return "421 connection dropped"
        content = envelope.content
        if isinstance(content, str):
            content = content.encode("utf-8", errors="surrogateescape")
        if self.count_only:
            line = {"rcpt_to": envelope.rcpt_tos, "message_id": message_id(content)}
        else:
            line = {
                "mail_from": envelope.mail_from,
                "rcpt_to": envelope.rcpt_tos,
                "data": content.decode("utf-8", errors="replace"),
            }
        self.out.write(json.dumps(line) + "\n")
        self.out.flush()
        if drop == "after_data":
            server.transport.close()
            return "421 connection dropped"
        return "250 Message accepted for delivery"


def message_id(content):
    """The Message-ID header's value, unfolded, or "" (cheap: no MIME parsing)."""
    end = content.find(b"\r\n\r\n")
    head = content if end < 0 else content[:end]
    lines = head.split(b"\r\n")
    for i, line in enumerate(lines):
        if line[:11].lower() == b"message-id:":
            value = line[11:]
            for cont in lines[i + 1:]:
                if cont[:1] not in (b" ", b"\t"):
                    break
                value += cont
            return value.strip().decode("utf-8", errors="replace")
    return ""


def watch_stdin():
    """Exits when stdin closes: the test process that started us is gone."""
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        os._exit(0)


async def serve(args):
    handler = Handler(args)
    tls_context = None
    if args.tls_cert:
        tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls_context.load_cert_chain(args.tls_cert, args.tls_key)

    def factory():
        return SMTP(
            handler,
            hostname="localhost",
            data_size_limit=None,
            enable_SMTPUTF8=True,
            decode_data=False,
            tls_context=tls_context,
            require_starttls=bool(tls_context) and args.require_starttls,
        )

    loop = asyncio.get_running_loop()
    server = await loop.create_server(factory, host=args.host, port=args.port)
    port = server.sockets[0].getsockname()[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(f"{port}\n")
        os.replace(tmp, args.port_file)
    async with server:
        await server.serve_forever()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True, help="0: any free port")
    parser.add_argument("--port-file", help="where to write the port once listening")
    parser.add_argument("--out", required=True, help="accepted messages, one JSON a line")
    parser.add_argument("--rules", required=True, help="the JSON rules file")
    parser.add_argument("--rcpt-seen", required=True, help="every RCPT TO address, a line each")
    parser.add_argument("--count-only", action="store_true")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--require-starttls", action="store_true")
    parser.add_argument("--watch-stdin", action="store_true", help="exit when stdin closes")
    args = parser.parse_args()
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    if args.watch_stdin:
        threading.Thread(target=watch_stdin, daemon=True).start()
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
