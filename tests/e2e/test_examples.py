"""Every shipped example runs: examples/quickstart with the repository's
routes/ is checked with -t as it stands, then served against the recording
upstream (its fixed ports swapped for free ones)."""

import os
import re
import subprocess

import requests

from conftest import GATEHOUSE_BIN, assert_problem, free_port, wait_until

ROOT = os.environ.get("GH_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
QUICKSTART = os.path.join(ROOT, "examples", "quickstart", "gatehouse.lua")


def test_quickstart_config_is_valid_as_shipped():
    out = subprocess.run([GATEHOUSE_BIN, "-t", "-c", QUICKSTART], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    assert "configuration is valid (2 routes, 1 upstreams)" in out.stdout


def mint(*args):
    """A token from the repository's scripts/mint-token (the README's path)."""
    out = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "scripts", "mint-token"), *args],
                         capture_output=True, text=True, timeout=30, check=True)
    return out.stdout.strip()


def quickstart_text(port, upstream_addr, admin_port=None):
    """The shipped config with its ports moved and routes/ made absolute."""
    with open(QUICKSTART) as f:
        text = f.read()
    text = text.replace('"127.0.0.1:8080"', f'"127.0.0.1:{port}"')
    assert '"127.0.0.1:9901"' in text, "the quickstart's admin listener moved: update this test"
    text = text.replace('"127.0.0.1:9901"', f'"127.0.0.1:{admin_port or free_port()}"')
    text = text.replace('"127.0.0.1:9000"', f'"{upstream_addr}"')
    routes = os.path.abspath(os.path.join(ROOT, "routes")) + "/"
    return re.sub(r'routes\s*=\s*"[^"]*"', f'routes = "{routes}"', text)


def test_quickstart_serves_its_routes(gateway, upstream, tmp_path):
    admin_port = free_port()
    text = quickstart_text("@PORT@", upstream.addr, admin_port)
    keys = os.path.abspath(os.path.join(ROOT, "examples", "quickstart", "keys"))
    gw = gateway(config_text=text.replace('"keys/', f'"{keys}/'))
    token = mint("--sub", "alice")
    with gw.connect() as c:
        c.request("GET", "/api/orders/42")  # the README's 401 line
        r = c.read_response()
        assert_problem(r, 401)
        assert r.header("WWW-Authenticate") == 'Bearer realm="demo"'
        c.request("GET", "/api/orders/42?x=1",
                  headers=[("Authorization", f"Bearer {token}"), ("X-User-Id", "mallory")])
        assert c.read_response().status == 200
        c.request("GET", "/public/logo.png")
        assert c.read_response().status == 200
        c.request("PUT", "/api/orders/42")  # the orders route allows GET, POST and DELETE only
        assert_problem(c.read_response(), 404)
    reqs = upstream.wait_for(2)
    assert reqs[0].target == "/orders/42?x=1"
    assert reqs[0].header("X-Forwarded-Prefix") == "/api"
    assert reqs[0].header("Authorization") == f"Bearer {token}"  # relayed unchanged
    assert reqs[0].header_all("X-User-Id") == ["alice"]  # from sub; the client's dropped
    assert reqs[0].header("X-Roles") == "USER"  # the demo policy's header
    assert reqs[1].target == "/public/logo.png"
    assert reqs[1].header("X-Forwarded-Prefix") is None
    assert len(upstream.requests) == 2
    # the admin listener an operator finds on loopback: ready, and counting
    admin = f"http://127.0.0.1:{admin_port}"

    def ready():
        try:
            return requests.get(f"{admin}/ready", timeout=5).status_code == 200
        except requests.ConnectionError:
            return False

    wait_until(ready, 10.0,
               lambda: f"GET /ready 200:\n{gw.stderr()[-2000:]}")
    metrics = requests.get(f"{admin}/metrics", timeout=5)
    assert metrics.status_code == 200
    assert re.search(r'^gatehouse_http_requests_total\{[^}]*route="orders"', metrics.text, re.M), \
        metrics.text[:3000]


def test_quickstart_policy_checks_roles(gateway, upstream):
    """routes/demo.lua: USER reads, only ADMIN deletes, Server is stripped."""
    text = quickstart_text("@PORT@", upstream.addr)
    keys = os.path.abspath(os.path.join(ROOT, "examples", "quickstart", "keys"))
    gw = gateway(config_text=text.replace('"keys/', f'"{keys}/'))
    user = mint("--sub", "alice", "--roles", "USER")
    admin = mint("--sub", "root", "--roles", "ADMIN,USER")
    nobody = mint("--sub", "eve", "--roles", "")
    upstream.set_response("/orders/1", 200, [("Server", "Apache-Coyote/1.1")], b"ok")
    with gw.connect() as c:
        c.request("DELETE", "/api/orders/1", headers=[("Authorization", f"Bearer {user}")])
        r = c.read_response()
        assert_problem(r, 403)
        assert b"ADMIN role required" in r.body
        c.request("GET", "/api/orders/1", headers=[("Authorization", f"Bearer {nobody}")])
        assert_problem(c.read_response(), 403)
        assert upstream.requests == []  # denied requests reach nothing
        c.request("DELETE", "/api/orders/1", headers=[("Authorization", f"Bearer {admin}")])
        r = c.read_response()
        assert r.status == 200
        assert r.header("X-Content-Type-Options") == "nosniff"
        assert r.header("Server") is None
    reqs = upstream.wait_for(1)
    assert reqs[0].method == "DELETE"
    assert reqs[0].header("X-Roles") == "ADMIN,USER"


def test_quickstart_policy_tests_pass():
    """`gatehouse test routes` runs routes/demo_test.lua, as the README says."""
    out = subprocess.run([GATEHOUSE_BIN, "test", os.path.join(ROOT, "routes")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 failed" in out.stdout
