"""A real SMTP server (aiosmtpd, installed by hack/deps.sh) for the
notification tests: listens on 127.0.0.1 on a free port, prints the port,
and writes each message it accepts as <n>.json (parsed with Python's email
package: subject, from, to, message id, the text and HTML parts, whether the
session was TLS and who logged in) into the directory given as its first
argument. Runs until killed.

    smtp_sink.py DIR [CERT KEY USER PASSWORD]

With a certificate, key and credentials: STARTTLS is required, and so is
AUTH (PLAIN/LOGIN) with exactly these credentials, over TLS only."""

import asyncio
import json
import os
import ssl
import sys
from email import message_from_bytes, policy

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


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
            "tls": session.ssl is not None,
            "authenticated": bool(session.authenticated),
            "login": getattr(session, "redblack_login", None),
        }
        tmp = os.path.join(self.directory, f"{self.count}.tmp")
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(self.directory, f"{self.count}.json"))
        return "250 Message accepted for delivery"


class Credentials:
    def __init__(self, user, password):
        self.user = user.encode()
        self.password = password.encode()

    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == self.user
            and auth_data.password == self.password
        )
        if ok:
            session.redblack_login = auth_data.login.decode()
        return AuthResult(success=ok)


async def main():
    handler = Sink(sys.argv[1])
    kwargs = {}
    if len(sys.argv) == 6:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(sys.argv[2], sys.argv[3])
        kwargs = dict(
            tls_context=context,
            require_starttls=True,
            authenticator=Credentials(sys.argv[4], sys.argv[5]),
            auth_required=True,
            auth_require_tls=True,
        )
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler, **kwargs), "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


asyncio.run(main())
