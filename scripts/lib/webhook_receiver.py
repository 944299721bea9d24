#!/usr/bin/env python3
"""A tiny webhook receiver for scripts/demo.

Usage: webhook_receiver.py OUT_DIR

Listens on 127.0.0.1 on a free port, writes that port to OUT_DIR/port once it is
listening, and saves the body of every POST it receives as OUT_DIR/body-NNN.json
(NNN counts from 001). Answers 204. Runs until killed.
"""
import http.server
import os
import sys
import threading

out_dir = sys.argv[1]
lock = threading.Lock()
count = 0


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        global count
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        with lock:
            count += 1
            name = os.path.join(out_dir, "body-%03d.json" % count)
        with open(name + ".tmp", "wb") as f:
            f.write(body)
        os.rename(name + ".tmp", name)
        self.send_response(204)
        self.end_headers()

    def log_message(self, format, *args):  # keep the demo's output clean
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(os.path.join(out_dir, "port.tmp"), "w") as f:
    f.write("%d\n" % server.server_address[1])
os.rename(os.path.join(out_dir, "port.tmp"), os.path.join(out_dir, "port"))
server.serve_forever()
