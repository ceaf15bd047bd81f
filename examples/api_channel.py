#!/usr/bin/env python3
"""The app's server of a kefu API channel, in one file (Python 3 standard library only).

It plays what a shop's backend does for its app or 小程序: it names its signed-in user to kefu,
starts a conversation with what the user typed, posts their next messages and files, and receives
the agents' replies, typing, the end and the rating request as signed webhook deliveries.

Set up (an admin, once): create the channel and note its secrets, shown once:

    POST /api/v1/admin/channels  {"kind": "api", "name": "商城 App",
                                  "webhook_url": "http://127.0.0.1:9010/kefu/events"}
    -> secrets.token ("ch1.…") and secrets.webhook_secret

Run:

    KEFU_URL=http://127.0.0.1:8080 KEFU_CHANNEL_TOKEN=ch1.… KEFU_WEBHOOK_SECRET=… \\
        python3 examples/api_channel.py --user u10086 --name 王女士 --listen 127.0.0.1:9010

Then type lines: the first starts the conversation, the next ones are the user's messages.
`/file PATH` sends a file, `/typing`, `/end` ends, `/rate 5 很满意` rates, `/quit` leaves.
"""

import argparse
import hashlib
import hmac
import http.server
import json
import mimetypes
import os
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

KEFU = os.environ.get("KEFU_URL", "http://127.0.0.1:8080").rstrip("/")
TOKEN = os.environ.get("KEFU_CHANNEL_TOKEN", "")
SECRET = os.environ.get("KEFU_WEBHOOK_SECRET", "")
# Deliveries older than this are refused (a replayed request); kefu signs each attempt anew.
MAX_AGE_SECS = 300


def call(method, path, body=None, raw=None, content_type="application/json"):
    """One call to kefu with the channel token; the JSON answer (or None)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(KEFU + path, data=data, method=method)
    request.add_header("Authorization", "Bearer " + TOKEN)
    if data is not None:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read().decode()
            return json.loads(text) if text else None
    except urllib.error.HTTPError as error:
        problem = json.loads(error.read().decode() or "{}")
        print(f"! kefu answered {error.code} {problem.get('code')}: {problem.get('message')}")
        return None


def signature_ok(headers, body):
    """X-Kefu-Signature is sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" under the secret>."""
    timestamp = headers.get("X-Kefu-Timestamp", "")
    given = headers.get("X-Kefu-Signature", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > MAX_AGE_SECS:
        return False
    expected = "sha256=" + hmac.new(SECRET.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, given)


class State:
    conversation = None
    seen_deliveries = set()


class Events(http.server.BaseHTTPRequestHandler):
    """Receives kefu's webhook deliveries at POST /kefu/events."""

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path != "/kefu/events" or not signature_ok(self.headers, body):
            self.send_response(401)
            self.end_headers()
            return
        self.send_response(200)
        self.end_headers()
        event = json.loads(body)
        # A retried delivery keeps its id: show it once.
        if event["delivery"] in State.seen_deliveries:
            return
        State.seen_deliveries.add(event["delivery"])
        kind = event["event"]
        if kind == "message":
            message = event["message"]
            files = " ".join(f"[{a['name']}]" for a in message.get("attachments", []))
            print(f"\n< {message['sender_name']}: {message['body']} {files}".rstrip())
        elif kind == "typing":
            print("\n< (客服正在输入…)" if event["typing"] else "\n< (客服停止输入)")
        elif kind == "state":
            print(f"\n< 会话状态：{event['state']['state']}，客服：{event['state'].get('agent_name') or '—'}")
        elif kind == "queue":
            print(f"\n< 排队中：第 {event['position']} 位，预计 {event['estimated_wait_secs']} 秒")
        elif kind == "ended":
            print("\n< 会话已结束")
        elif kind == "rating_requested":
            print("\n< 请为本次服务评分：输入 /rate 1-5 [评价]")
        print("> ", end="", flush=True)

    def log_message(self, *args):
        pass


def send_file(path):
    with open(path, "rb") as file:
        content = file.read()
    name = urllib.parse.quote(os.path.basename(path))
    kind = mimetypes.guess_type(path)[0] or "application/octet-stream"
    uploaded = call("POST", f"/api/v1/channels/api/conversations/{State.conversation}/files?name={name}",
                    raw=content, content_type=kind)
    if uploaded:
        call("POST", f"/api/v1/channels/api/conversations/{State.conversation}/messages",
             {"attachments": [uploaded["hash"]]})


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--user", required=True, help="the app's user id")
    parser.add_argument("--name", help="the user's nickname")
    parser.add_argument("--listen", default="127.0.0.1:9010", help="where kefu's webhooks arrive")
    args = parser.parse_args()
    if not TOKEN or not SECRET:
        sys.exit("set KEFU_CHANNEL_TOKEN and KEFU_WEBHOOK_SECRET (shown when the channel was created)")
    host, port = args.listen.rsplit(":", 1)
    server = http.server.ThreadingHTTPServer((host, int(port)), Events)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    user = {"user_id": args.user, "name": args.name}
    visitor = call("POST", "/api/v1/channels/api/visitors", user)
    if visitor is None:
        sys.exit(1)
    State.conversation = visitor["conversation"]
    print(f"visitor {visitor['visitor_id']}; open conversation: {State.conversation or 'none'}")
    sequence = 0
    for line in iter(lambda: input("> "), None):
        line = line.strip()
        if not line:
            continue
        if line == "/quit":
            break
        if State.conversation is None:
            started = call("POST", "/api/v1/channels/api/conversations", {**user, "message": line})
            if started:
                State.conversation = started["conversation"]["id"]
                print(f"conversation {State.conversation} ({started['conversation']['state']})")
            continue
        path = f"/api/v1/channels/api/conversations/{State.conversation}"
        if line.startswith("/file "):
            send_file(line[len("/file "):].strip())
        elif line == "/typing":
            call("POST", path + "/typing", {"typing": True})
        elif line == "/end":
            call("POST", path + "/end")
        elif line.startswith("/rate"):
            parts = line.split(maxsplit=2)
            stars = int(parts[1]) if len(parts) > 1 else 5
            call("POST", path + "/rating", {"stars": stars, "comment": parts[2] if len(parts) > 2 else ""})
        else:
            sequence += 1
            # The key makes a resend after a timeout safe: kefu stores the message once.
            answer = call("POST", path + "/messages", {"body": line, "client_key": f"{args.user}-{int(time.time())}-{sequence}"})
            if answer is None:
                # Closed: the next line starts a new conversation.
                State.conversation = None


if __name__ == "__main__":
    try:
        main()
    except (EOFError, KeyboardInterrupt):
        pass
