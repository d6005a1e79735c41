"""A Slack incoming webhook for the live compose test: answers every POST
with `ok`, as Slack does, and prints its body as one line on stdout, which
the test reads with `docker logs`."""

import http.server
import json
import sys


class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        try:
            print(json.dumps({"path": self.path, "body": json.loads(body)}), flush=True)
        except ValueError:
            print(json.dumps({"path": self.path, "unparsed": body.decode("utf-8", "replace")}), flush=True)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


print("fake slack listening on :8080", flush=True)
sys.stdout.flush()
http.server.ThreadingHTTPServer(("0.0.0.0", 8080), Hook).serve_forever()
