# A tiny HTTP server for test releases: answers every GET with
# "<name> <path>". Started by a release's startCommand; it binds its port
# before the command returns, then runs detached, its pid in server.pid.
# For health checks, GET /up answers as the file `up` in its directory says
# ("<status> <body>", e.g. "500 database unreachable"), else 200; with a
# file `up-after` holding N, it answers 503 "warming up" for its first N
# seconds; a file `up-reason` replaces the reason phrase of its status line
# (raw bytes, as a hostile server might send); with a file `up-hang`, it
# creates `hanging` and answers nothing for 30 s. With a file `die-after`
# holding N, the server exits N seconds after it started (a release that
# dies after every start).
import http.server
import os
import sys
import time

port, name = int(sys.argv[1]), sys.argv[2]


started = time.monotonic()


def health():
    if os.path.exists("up-hang"):
        open("hanging", "w").close()
        time.sleep(30)
    try:
        with open("up-after") as f:
            if time.monotonic() - started < float(f.read()):
                return 503, "warming up"
    except FileNotFoundError:
        pass
    try:
        with open("up") as f:
            status, _, body = f.read().strip().partition(" ")
            return int(status), body
    except FileNotFoundError:
        return 200, f"{name} /up"


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        status, text = health() if self.path == "/up" else (200, f"{name} {self.path}")
        body = text.encode()
        reason = None
        if self.path == "/up" and os.path.exists("up-reason"):
            with open("up-reason") as f:
                reason = f.read()
        self.send_response(status, reason)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


# A server stopped a moment ago may still hold the port: retry briefly, and
# say why when giving up (the start command's output reaches the test).
for attempt in range(30):
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        break
    except OSError as e:
        if attempt == 29:
            sys.stderr.write(f"serve.py: cannot listen on {port}: {e}\n")
            sys.exit(1)
        time.sleep(0.1)
pid = os.fork()
if pid:
    with open("server.pid", "w") as f:
        f.write(str(pid))
    sys.exit(0)
os.setsid()
null = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(null, fd)
try:
    with open("die-after") as f:
        import threading

        threading.Timer(float(f.read()), lambda: os._exit(1)).start()
except FileNotFoundError:
    pass
server.serve_forever()
