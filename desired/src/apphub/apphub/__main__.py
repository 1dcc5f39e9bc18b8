"""Serve the catalog directory as a JSON index plus the raw entries."""

import argparse
import json
import os
from http.server import HTTPServer, SimpleHTTPRequestHandler


class CatalogHandler(SimpleHTTPRequestHandler):
    def do_GET(self):
        if self.path in ("/", "/index.json"):
            entries = sorted(n for n in os.listdir(".") if n.endswith(".yaml"))
            body = json.dumps({"apps": entries}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()


def main():
    parser = argparse.ArgumentParser(prog="apphub")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    os.chdir(os.environ.get("APPHUB_CATALOG", "/app/catalog"))
    HTTPServer(("", args.port), CatalogHandler).serve_forever()


if __name__ == "__main__":
    main()
