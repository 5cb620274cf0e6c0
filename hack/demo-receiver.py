"""The demo's chat: a Slack-compatible incoming webhook on 127.0.0.1 that
the demo's Notifier posts to. Writes its port to PORTFILE once listening and
appends the first line of each message's `text` to MESSAGES, which the demo
prints after each act. Runs until killed.

    demo-receiver.py PORTFILE MESSAGES
"""

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORTFILE, MESSAGES = sys.argv[1], sys.argv[2]


class Chat(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            text = str(json.loads(body).get("text", ""))
        except ValueError:
            text = "(not JSON)"
        with open(MESSAGES, "a") as f:
            f.write(text.split("\n")[0] + "\n")
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Chat)
tmp = PORTFILE + ".tmp"
with open(tmp, "w") as f:
    f.write(str(server.server_address[1]))
os.rename(tmp, PORTFILE)
server.serve_forever()
