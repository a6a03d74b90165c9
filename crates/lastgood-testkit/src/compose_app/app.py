"""The shop's web app (stdlib http.server, psycopg2).

GET /health answers 200 `ok <version>` when this release can serve: the database
answers and has the table and column this release reads. Otherwise 500
`unhealthy <version>: <reason>`, so a release on the wrong schema is visibly unhealthy.
GET /version answers the release's version (the VERSION file of the tree).
"""

import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

import psycopg2

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "VERSION"), encoding="utf-8") as f:
    VERSION = f.read().strip()
PORT = int(os.environ.get("PORT", "8000"))
# What this release reads: a table and, if not None, a column of it.
SCHEMA = ("items", @COLUMN@)
# Settings this release cannot work without.
REQUIRED_SETTINGS = [@SETTINGS@]

db = None


def connect():
    """The connection, opened (again) when there is none or it broke."""
    global db
    if db is None or db.closed:
        db = psycopg2.connect(os.environ.get("DATABASE_URL", ""), connect_timeout=3)
        db.autocommit = True
    return db


def problem():
    """Why this release cannot serve, or None."""
    global db
    missing = [s for s in REQUIRED_SETTINGS if not os.environ.get(s)]
    if missing:
        return "not configured: " + ", ".join(missing)
    table, column = SCHEMA
    try:
        with connect().cursor() as cur:
            cur.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND table_name = %s",
                (table,),
            )
            columns = {row[0] for row in cur.fetchall()}
    except psycopg2.Error as e:
        db = None
        return "database: " + " ".join(str(e).split())
    if not columns:
        return "schema: no table " + table
    if column is not None and column not in columns:
        return "schema: no column %s.%s" % (table, column)
    return None


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            why = problem()
            if why is None:
                self.answer(200, "ok " + VERSION)
            else:
                self.answer(500, "unhealthy %s: %s" % (VERSION, why))
        elif self.path == "/version":
            self.answer(200, VERSION)
        else:
            self.answer(404, "not found")

    def answer(self, code, text):
        body = (text + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    # PID 1 in its container: without a handler SIGTERM would be ignored until the kill.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        connect()
        print("shop %s: connected to the database" % VERSION, flush=True)
    except psycopg2.Error as e:
        print("shop %s: no database yet: %s" % (VERSION, " ".join(str(e).split())), flush=True)
    server = HTTPServer(("127.0.0.1", PORT), Handler)
    print("shop %s: listening on 127.0.0.1:%d" % (VERSION, PORT), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
