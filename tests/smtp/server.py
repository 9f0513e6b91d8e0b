"""A test SMTP server (aiosmtpd) that saves every message it accepts and can be told to fail.

Usage: python server.py PORT FOLDER

Each accepted message is saved as FOLDER/<n>.eml (the raw bytes received) with FOLDER/<n>.json
beside it: {"mail_from", "rcpt_tos", "from", "to", "subject", "body"}, the headers and the
plain-text body decoded. Every RCPT and DATA command is appended to FOLDER/commands.log as one
line "<COMMAND> <reply code>", so that a test can count attempts.

Failures are set by environment variables:
  SMTP_TEST_FAIL     "none" (default), "transient:N" (answer the first N commands with 451),
                     or "permanent" (answer every command with 550)
  SMTP_TEST_FAIL_AT  "rcpt" (default) or "data": which command fails

The server prints "ready" on stdout once it listens on 127.0.0.1:PORT.
"""

import asyncio
import email
import email.policy
import json
import os
import sys
from pathlib import Path

from aiosmtpd.smtp import SMTP


class Handler:
    def __init__(self, folder: Path, fail: str, fail_at: str):
        self.folder = folder
        self.fail_at = fail_at.upper()
        self.saved = 0
        self.permanent = fail == "permanent"
        self.transient_left = 0
        if fail.startswith("transient:"):
            self.transient_left = int(fail.split(":", 1)[1])
        elif fail not in ("none", "permanent"):
            raise SystemExit(f"unknown SMTP_TEST_FAIL={fail!r}")

    def log(self, command: str, reply: str) -> str:
        with open(self.folder / "commands.log", "a", encoding="utf-8") as log:
            log.write(f"{command} {reply[:3]}\n")
        return reply

    def failure(self, command: str):
        if command != self.fail_at:
            return None
        if self.permanent:
            return "550 5.1.1 Mailbox unavailable (test server told to refuse)"
        if self.transient_left > 0:
            self.transient_left -= 1
            return "451 4.3.0 Try again later (test server told to fail)"
        return None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        failure = self.failure("RCPT")
        if failure:
            return self.log("RCPT", failure)
        envelope.rcpt_tos.append(address)
        return self.log("RCPT", "250 OK")

    async def handle_DATA(self, server, session, envelope):
        failure = self.failure("DATA")
        if failure:
            return self.log("DATA", failure)
        self.saved += 1
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        message = email.message_from_bytes(raw, policy=email.policy.default)
        body = message.get_body(preferencelist=("plain",))
        summary = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "from": str(message["From"]),
            "to": str(message["To"]),
            "subject": str(message["Subject"]),
            "body": body.get_content() if body is not None else "",
        }
        stem = self.folder / f"{self.saved}"
        temporary = self.folder / f".{self.saved}.tmp"
        temporary.write_bytes(raw)
        temporary.rename(stem.with_suffix(".eml"))
        temporary.write_text(json.dumps(summary), encoding="utf-8")
        temporary.rename(stem.with_suffix(".json"))
        return self.log("DATA", "250 Message accepted for delivery")


def main() -> None:
    port = int(sys.argv[1])
    folder = Path(sys.argv[2])
    folder.mkdir(parents=True, exist_ok=True)
    handler = Handler(
        folder,
        os.environ.get("SMTP_TEST_FAIL", "none"),
        os.environ.get("SMTP_TEST_FAIL_AT", "rcpt"),
    )
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(
        loop.create_server(
            lambda: SMTP(handler, decode_data=False, enable_SMTPUTF8=True),
            host="127.0.0.1",
            port=port,
        )
    )
    print("ready", flush=True)
    try:
        loop.run_forever()
    finally:
        server.close()


if __name__ == "__main__":
    main()
