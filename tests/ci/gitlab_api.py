"""A stand-in for the two GitLab API endpoints examples/ci/gitlab/gitlab-ci.yml calls, for
tests/ci_examples.rs: POST .../merge_requests/IID/notes (the body is written to NOTES),
GET .../repository/commits/SHA/merge_requests (one merge request, iid 7), and
GET .../jobs/artifacts/REF/download?job=infra:plan (a zip of DIR/served as infra-plan/).
Every request must carry the PRIVATE-TOKEN header. Usage: gitlab_api.py PORT DIR NOTES"""
import http.server
import io
import json
import os
import sys
import zipfile

PORT, DIR, NOTES = int(sys.argv[1]), sys.argv[2], sys.argv[3]


class Handler(http.server.BaseHTTPRequestHandler):
    def reply(self, code, body, kind="application/json"):
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def authorized(self):
        if self.headers.get("PRIVATE-TOKEN"):
            return True
        self.reply(401, b'{"message": "401 Unauthorized"}')
        return False

    def do_POST(self):
        if not self.authorized():
            return
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path == "/api/v4/projects/42/merge_requests/7/notes":
            with open(NOTES, "wb") as f:
                f.write(body)
            return self.reply(201, b'{"id": 1}')
        self.reply(404, b"{}")

    def do_GET(self):
        if not self.authorized():
            return
        if self.path == "/api/v4/projects/42/repository/commits/0123abcd/merge_requests":
            return self.reply(200, b'[{"iid": 7}]')
        if self.path.startswith("/api/v4/projects/42/jobs/artifacts/refs%2Fmerge-requests%2F7%2Fhead/download?job=infra:plan"):
            data = io.BytesIO()
            served = os.path.join(DIR, "served")
            with zipfile.ZipFile(data, "w") as z:
                for name in sorted(os.listdir(served)):
                    z.write(os.path.join(served, name), "infra-plan/" + name)
            return self.reply(200, data.getvalue(), "application/zip")
        self.reply(404, b"{}")

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
