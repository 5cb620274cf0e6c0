"""A real SMTP server (aiosmtpd, installed by hack/deps.sh) for the
notification tests: listens on 127.0.0.1 on a free port, prints the port,
and writes each message it accepts as <n>.json (parsed with Python's email
package: subject, from, to, message id, the text and HTML parts) into the
directory given as its argument. Runs until killed."""

import asyncio
import json
import os
import sys
from email import message_from_bytes, policy

from aiosmtpd.smtp import SMTP


class Sink:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        msg = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        parts = {}
        for part in msg.walk():
            if part.get_content_type() in ("text/plain", "text/html") and not part.is_multipart():
                parts[part.get_content_type()] = part.get_content()
        self.count += 1
        record = {
            "mailFrom": envelope.mail_from,
            "rcptTos": envelope.rcpt_tos,
            "subject": str(msg["subject"]),
            "from": str(msg["from"]),
            "to": str(msg["to"]),
            "messageId": str(msg["message-id"]),
            "contentType": msg.get_content_type(),
            "text": parts.get("text/plain"),
            "html": parts.get("text/html"),
        }
        tmp = os.path.join(self.directory, f"{self.count}.tmp")
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(self.directory, f"{self.count}.json"))
        return "250 Message accepted for delivery"


async def main():
    handler = Sink(sys.argv[1])
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler), "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


asyncio.run(main())
