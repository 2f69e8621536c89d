"""The Azure SignalR Service data-plane REST API (2022-06-01 and v1) as its callers use it:
plain HTTP with `requests`, a bearer JWT signed HS256 with the access key (PyJWT), `aud` the
request URL without its query, `exp` a minute ahead. Written from the published API reference
(Microsoft Learn, "Azure SignalR Service data plane REST API"), not from the server's code.

Official JavaScript clients (rest_clients.mjs, @microsoft/signalr) are connected to the hub
`testhub` of HUBS_CLIENT_URL; the REST calls go to HUBS_REST_URL (the same server, or another
one on the same Redis backplane). Every send must reach exactly the clients it names, on JSON
and MessagePack connections and on every transport; group changes must show in a following
`SendToGroup` from the hub; closes must close with their reason; bad input must get its status
and reach no client.
"""

import json
import os
import subprocess
import sys
import threading
import time
import uuid

import jwt
import requests

REST = os.environ["HUBS_REST_URL"].rstrip("/")
CLIENTS = os.environ["HUBS_CLIENT_URL"].rstrip("/")
KEY = os.environ["HUBS_ACCESS_KEY"]
HERE = os.path.dirname(os.path.abspath(__file__))
STEP = 10.0


def token(path, key=KEY, lifetime=60, audience=None):
    claims = {"aud": audience or f"{REST}{path}", "exp": int(time.time()) + lifetime}
    return jwt.encode(claims, key, algorithm="HS256")


def call(method, path, params=None, body=None, raw=None, headers=None, **token_args):
    all_headers = {"Authorization": f"Bearer {token(path, **token_args)}"}
    all_headers.update(headers or {})
    if body is not None:
        raw = json.dumps(body)
    if raw is not None:
        all_headers["Content-Type"] = "application/json"
    return requests.request(method, f"{REST}{path}", params=params, data=raw,
                            headers=all_headers, timeout=STEP)


def expect_status(response, status, what):
    assert response.status_code == status, (
        f"{what}: expected {status}, got {response.status_code} {response.text!r}")


def expect_error(response, status, what):
    """A failure with the API's ErrorDetail body."""
    expect_status(response, status, what)
    if response.request.method != "HEAD":
        detail = response.json()
        assert isinstance(detail.get("code"), str) and isinstance(detail.get("message"), str), (
            f"{what}: not an ErrorDetail: {response.text!r}")


class Clients:
    """The node process and the events it reports."""

    def __init__(self):
        self.process = subprocess.Popen(
            ["node", os.path.join(HERE, "rest_clients.mjs")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "HUBS_CLIENT_URL": CLIENTS})
        self.events = []
        self.ids = {}
        self.changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            event = json.loads(line)
            with self.changed:
                self.events.append(event)
                self.changed.notify_all()

    def send(self, command):
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def wait_for(self, predicate, what, timeout=STEP, after=0):
        deadline = time.time() + timeout
        with self.changed:
            while True:
                for event in self.events[after:]:
                    if predicate(event):
                        return event
                left = deadline - time.time()
                assert left > 0, f"timed out waiting for {what}; events: {self.events}"
                self.changed.wait(left)

    def connect(self, name, user=None, protocol="json", transport="WebSockets"):
        self.send({"cmd": "connect", "name": name, "user": user, "protocol": protocol,
                   "transport": transport})
        event = self.wait_for(lambda e: e.get("name") == name and e["event"] in ("connected", "failed"),
                              f"{name} to connect")
        assert event["event"] == "connected", f"{name} failed to connect: {event}"
        self.ids[name] = event["id"]
        # The server registers a connection with routing (and applies its user's groups)
        # right after the handshake answer: its first invocation is read once that is done.
        assert self.invoke(name, "GetCallerConnectionId") == event["id"]
        return event["id"]

    def invoke(self, name, method, *args):
        with self.changed:
            before = len(self.events)
        self.send({"cmd": "invoke", "name": name, "method": method, "args": list(args)})
        event = self.wait_for(lambda e: e["event"] == "invoked" and e["name"] == name,
                              f"{name} to invoke {method}", after=before)
        assert event["error"] is None, f"{method} failed: {event['error']}"
        return event["result"]

    def received(self, text):
        """Who received a message whose first argument is `text`."""
        with self.changed:
            return sorted(e["name"] for e in self.events
                          if e["event"] == "message" and e["args"] and e["args"][-1] == text)

    def closed(self, name):
        return self.wait_for(lambda e: e["event"] == "closed" and e["name"] == name, f"{name} to close")

    def stop(self):
        try:
            self.send({"cmd": "exit"})
            self.process.wait(timeout=STEP)
        except Exception:
            self.process.kill()


class Expectations:
    """Each message text and who must get it; checked all at once, after a settle."""

    def __init__(self, clients):
        self.clients = clients
        self.expected = {}

    def text(self, recipients):
        text = f"m-{uuid.uuid4().hex[:8]}"
        self.expected[text] = sorted(recipients)
        return text

    def arrive(self, text):
        """Waits until every expected recipient of `text` has it."""
        want = self.expected[text]
        deadline = time.time() + STEP
        while self.clients.received(text) != want and time.time() < deadline:
            if len(self.clients.received(text)) > len(want):
                break
            time.sleep(0.02)

    def check(self):
        time.sleep(1.0)
        wrong = {text: (want, self.clients.received(text))
                 for text, want in self.expected.items() if self.clients.received(text) != want}
        assert not wrong, f"messages that did not reach exactly their recipients (want, got): {wrong}"


def eventually_status(method, path, status, what):
    """The status a check gets once the server has caught up (a close completes on the
    client before routing forgets the connection)."""
    deadline = time.time() + STEP
    while True:
        response = call(method, path)
        if response.status_code == status or time.time() > deadline:
            expect_status(response, status, what)
            return
        time.sleep(0.05)


def hub_send_to_group(clients, expect, sender, group, recipients):
    text = expect.text(recipients)
    clients.invoke(sender, "SendToGroup", group, text)
    expect.arrive(text)


def rest_send(clients, expect, path, recipients, params=None, v1=False, extra=None):
    text = expect.text(recipients)
    arguments = [extra, text] if extra is not None else [text]
    body = {"Target": "RestMessage", "Arguments": arguments} if v1 else {
        "target": "RestMessage", "arguments": arguments}
    expect_status(call("POST", path, params=params, body=body), 202, f"POST {path}")
    expect.arrive(text)
    return text


def authentication():
    path = "/api/hubs/testhub/:send"
    body = json.dumps({"target": "RestMessage", "arguments": ["never"]})
    headers = {"Content-Type": "application/json"}
    expect_error(requests.post(f"{REST}{path}", data=body, headers=headers, timeout=STEP), 401, "no token")
    expect_error(call("POST", path, raw=body, key="another key, of the length HS256 asks for"), 401, "another key")
    expect_error(call("POST", path, raw=body, lifetime=-10), 401, "an expired token")
    expect_error(call("POST", path, raw=body, audience=f"{REST}/api/hubs/other/:send"), 401, "another audience")
    expect_error(call("POST", path, raw=body, headers={"Authorization": "Basic abc"}), 401, "not a bearer token")
    expect_status(call("HEAD", "/api/health", params={"api-version": "2022-06-01"}), 200, "health")


def sends(clients, expect):
    ids = clients.ids
    rest_send(clients, expect, "/api/hubs/testhub/:send", ["a", "c", "d", "e"],
              params={"api-version": "2022-06-01", "excluded": ids["b"]}, extra={"n": 1})
    rest_send(clients, expect, "/api/hubs/TestHub/:send", ["a", "b", "c", "d", "e"])
    rest_send(clients, expect, "/api/hubs/testhub/:send", ["a", "c", "e"],
              params=[("excluded", ids["b"]), ("excluded", ids["d"])])
    rest_send(clients, expect, "/api/hubs/testhub/users/ann/:send", ["a", "b"])
    rest_send(clients, expect, "/api/hubs/testhub/users/nobody/:send", [])
    rest_send(clients, expect, f"/api/hubs/testhub/connections/{ids['c']}/:send", ["c"])
    rest_send(clients, expect, f"/api/hubs/testhub/connections/{ids['e']}/:send", ["e"], extra=[1, 2])


def connection_groups(clients, expect):
    ids = clients.ids
    group = "/api/hubs/testhub/groups/room one"
    expect_status(call("HEAD", group), 404, "an empty group")
    expect_status(call("PUT", f"{group}/connections/{ids['a']}"), 200, "a joins")
    expect_status(call("PUT", f"{group}/connections/{ids['e']}"), 200, "e joins")
    expect_error(call("PUT", f"{group}/connections/no-such-connection"), 404, "an unknown connection joins")
    expect_error(call("DELETE", f"{group}/connections/no-such-connection"), 404, "an unknown connection leaves")
    expect_status(call("HEAD", group), 200, "a group with members")
    listed = call("GET", f"{group}/connections", params={"api-version": "2024-12-01"})
    expect_status(listed, 200, "the group's connections")
    assert sorted(m["connectionId"] for m in listed.json()["value"]) == sorted([ids["a"], ids["e"]]), listed.text
    rest_send(clients, expect, f"{group}/:send", ["a", "e"])
    rest_send(clients, expect, f"{group}/:send", ["a"], params={"excluded": ids["e"]})
    hub_send_to_group(clients, expect, "d", "room one", ["a", "e"])
    expect_status(call("DELETE", f"{group}/connections/{ids['a']}"), 200, "a leaves")
    hub_send_to_group(clients, expect, "d", "room one", ["e"])
    expect_status(call("PUT", f"/api/hubs/testhub/groups/other/connections/{ids['e']}"), 200, "e joins other")
    expect_status(call("DELETE", f"/api/hubs/testhub/connections/{ids['e']}/groups"), 200, "e leaves all")
    hub_send_to_group(clients, expect, "d", "room one", [])
    hub_send_to_group(clients, expect, "d", "other", [])
    expect_status(call("HEAD", group), 404, "an emptied group")


def existence(clients):
    ids = clients.ids
    expect_status(call("HEAD", f"/api/hubs/testhub/connections/{ids['a']}"), 200, "a connection")
    expect_status(call("HEAD", "/api/hubs/testhub/connections/no-such-connection"), 404, "no connection")
    expect_status(call("HEAD", "/api/hubs/testhub/users/ann"), 200, "a user")
    expect_status(call("HEAD", "/api/hubs/testhub/users/nobody"), 404, "no user")


def user_groups(clients, expect):
    users = "/api/hubs/testhub/users"
    expect_status(call("PUT", f"{users}/bob/groups/g2"), 200, "bob joins g2")
    expect_status(call("HEAD", f"{users}/bob/groups/g2"), 200, "bob is in g2")
    expect_status(call("HEAD", f"{users}/ann/groups/g2"), 404, "ann is not in g2")
    clients.connect("f", user="bob", protocol="messagepack")
    hub_send_to_group(clients, expect, "a", "g2", ["c", "f"])
    expect_status(call("DELETE", f"{users}/bob/groups/g2"), 204, "bob leaves g2")
    expect_status(call("HEAD", f"{users}/bob/groups/g2"), 404, "bob left g2")
    hub_send_to_group(clients, expect, "a", "g2", [])
    # A membership for 2 s: carl's connection joins at once, and leaves when it ends.
    expect_status(call("PUT", f"{users}/carl/groups/g3", params={"ttl": "2"}), 200, "carl joins g3 for 2 s")
    hub_send_to_group(clients, expect, "a", "g3", ["e"])
    time.sleep(3)
    expect_status(call("HEAD", f"{users}/carl/groups/g3"), 404, "carl's membership ended")
    clients.connect("g", user="carl")
    hub_send_to_group(clients, expect, "a", "g3", [])
    # ttl=0: only the connections the user has now.
    expect_status(call("PUT", f"{users}/ann/groups/g4", params={"ttl": "0"}), 200, "ann's connections join g4")
    clients.connect("h", user="ann", transport="LongPolling")
    hub_send_to_group(clients, expect, "c", "g4", ["a", "b"])
    expect_status(call("HEAD", f"{users}/ann/groups/g4"), 200, "ann's connections are in g4")
    expect_status(call("PUT", f"{users}/ann/groups/g5"), 200, "ann joins g5")
    hub_send_to_group(clients, expect, "c", "g5", ["a", "b", "h"])
    expect_status(call("DELETE", f"{users}/ann/groups"), 204, "ann leaves every group")
    hub_send_to_group(clients, expect, "c", "g4", [])
    hub_send_to_group(clients, expect, "c", "g5", [])


def v1(clients, expect):
    ids = clients.ids
    hub = "/api/v1/hubs/testhub"
    rest_send(clients, expect, hub, ["a", "b", "c", "d", "e", "f", "g", "h"], v1=True)
    rest_send(clients, expect, hub, ["b", "c", "d", "e", "f", "g", "h"], params={"excluded": ids["a"]}, v1=True)
    rest_send(clients, expect, f"{hub}/users/bob", ["c", "f"], v1=True)
    rest_send(clients, expect, f"{hub}/connections/{ids['d']}", ["d"], v1=True)
    expect_status(call("GET", f"{hub}/connections/{ids['d']}"), 200, "v1: a connection")
    expect_status(call("GET", f"{hub}/connections/nope"), 404, "v1: no connection")
    expect_status(call("GET", f"{hub}/users/carl"), 200, "v1: a user")
    expect_status(call("GET", f"{hub}/users/nobody"), 404, "v1: no user")
    expect_status(call("PUT", f"{hub}/groups/v1g/connections/{ids['b']}"), 200, "v1: b joins")
    expect_status(call("GET", f"{hub}/groups/v1g"), 200, "v1: a group")
    rest_send(clients, expect, f"{hub}/groups/v1g", ["b"], v1=True)
    expect_status(call("DELETE", f"{hub}/groups/v1g/connections/{ids['b']}"), 200, "v1: b leaves")
    expect_status(call("GET", f"{hub}/groups/v1g"), 404, "v1: no group")
    expect_status(call("PUT", f"{hub}/groups/v1u/users/carl", params={"ttl": "60"}), 202, "v1: carl joins")
    expect_status(call("GET", f"{hub}/groups/v1u/users/carl"), 200, "v1: carl is in")
    hub_send_to_group(clients, expect, "a", "v1u", ["e", "g"])
    expect_status(call("DELETE", f"{hub}/groups/v1u/users/carl"), 202, "v1: carl leaves")
    expect_status(call("GET", f"{hub}/groups/v1u/users/carl"), 404, "v1: carl is out")
    expect_status(call("PUT", f"{hub}/groups/v1v/users/carl"), 202, "v1: carl joins again")
    expect_status(call("DELETE", f"{hub}/users/carl/groups"), 200, "v1: carl leaves all")
    hub_send_to_group(clients, expect, "a", "v1v", [])


def bad_input(clients):
    send = {"target": "RestMessage", "arguments": ["never"]}
    expect_error(call("POST", "/api/hubs/1testhub/:send", body=send), 400, "a hub name starting with a digit")
    expect_error(call("POST", "/api/hubs/test-hub/:send", body=send), 400, "a hub name with a dash")
    expect_error(call("POST", "/api/hubs/testhub/:send", params={"application": "9app"}, body=send), 400,
                 "a bad application name")
    expect_error(call("POST", "/api/hubs/nosuchhub/:send", body=send), 404, "a hub the server does not have")
    expect_error(call("POST", "/api/hubs/testhub/:send", raw="not json"), 400, "a body that is not JSON")
    expect_error(call("POST", "/api/hubs/testhub/:send", body={"arguments": ["never"]}), 400, "no target")
    expect_error(call("POST", "/api/hubs/testhub/:send", body={"target": "", "arguments": []}), 400,
                 "an empty target")
    expect_error(call("POST", "/api/hubs/testhub/:send", body={"target": "RestMessage", "arguments": "never"}),
                 400, "arguments that are not an array")
    expect_error(call("POST", "/api/hubs/testhub/:send", raw="[1,2]"), 400, "a body that is not an object")
    expect_error(call("POST", f"/api/hubs/testhub/groups/{'g' * 1025}/:send", body=send), 400,
                 "a group name of 1025 characters")
    expect_error(call("PUT", "/api/hubs/testhub/users/ann/groups/g", params={"ttl": "-1"}), 400, "a negative ttl")
    expect_error(call("PUT", "/api/hubs/testhub/users/ann/groups/g", params={"ttl": "2147483648"}), 400, "a ttl past int32")
    expect_error(call("PUT", "/api/hubs/testhub/users/ann/groups/g", params={"ttl": "18446744073709551615"}), 400, "a ttl past u64")
    expect_error(call("PUT", "/api/hubs/testhub/users/ann/groups/g", params={"ttl": "soon"}), 400, "a ttl in words")
    expect_error(call("POST", "/api/hubs/testhub/:send", params={"api-version": "1999-01-01"}, body=send), 400,
                 "an unknown api-version")
    expect_error(call("GET", "/api/hubs/testhub/:send"), 405, "a send with GET")
    expect_error(call("POST", "/api/hubs/testhub/no/such/path/here", body=send), 404, "a path the API has not")
    expect_error(call("POST", "/api/hubs/testhub/:send", raw="x" * (2 << 20)), 413, "a body over 1 MiB")


def closes(clients, expect):
    ids = clients.ids
    hub = "/api/hubs/testhub"
    expect_status(call("DELETE", f"{hub}/connections/{ids['d']}", params={"reason": "bye d"}), 200, "close d")
    assert "bye d" in (clients.closed("d")["error"] or ""), clients.closed("d")
    eventually_status("HEAD", f"{hub}/connections/{ids['d']}", 404, "d is gone")
    expect_status(call("DELETE", f"{hub}/connections/no-such-connection"), 200, "close an unknown connection")
    expect_status(call("POST", f"{hub}/users/bob/:closeConnections",
                       params={"reason": "bob goes", "excluded": ids["f"]}), 204, "close bob's c")
    assert "bob goes" in (clients.closed("c")["error"] or ""), clients.closed("c")
    rest_send(clients, expect, f"{hub}/users/bob/:send", ["f"])
    expect_status(call("PUT", f"{hub}/groups/last/connections/{ids['g']}"), 200, "g joins last")
    expect_status(call("PUT", f"{hub}/groups/last/connections/{ids['h']}"), 200, "h joins last")
    expect_status(call("POST", f"{hub}/groups/last/:closeConnections",
                       params={"excluded": ids["h"], "reason": "group closed"}), 204, "close the group")
    assert "group closed" in (clients.closed("g")["error"] or ""), clients.closed("g")
    expect_status(call("POST", f"{hub}/:closeConnections", params={"excluded": ids["a"]}), 204, "close all but a")
    for name in ("b", "e", "f", "h"):
        clients.closed(name)
    rest_send(clients, expect, f"{hub}/:send", ["a"])
    expect_status(call("POST", f"{hub}/:closeConnections", params={"reason": "the end"}), 204, "close all")
    assert "the end" in (clients.closed("a")["error"] or ""), clients.closed("a")
    eventually_status("HEAD", f"{hub}/users/ann", 404, "ann has no connection left")


def main():
    clients = Clients()
    expect = Expectations(clients)
    try:
        authentication()
        clients.connect("a", user="ann")
        clients.connect("b", user="ann", protocol="messagepack")
        clients.connect("c", user="bob", transport="LongPolling")
        clients.connect("d", transport="ServerSentEvents")
        clients.connect("e", user="carl", protocol="messagepack", transport="LongPolling")
        sends(clients, expect)
        connection_groups(clients, expect)
        existence(clients)
        user_groups(clients, expect)
        v1(clients, expect)
        bad_input(clients)
        closes(clients, expect)
        expect.check()
        print("REST API: every check passed")
    finally:
        clients.stop()


if __name__ == "__main__":
    sys.exit(main())
