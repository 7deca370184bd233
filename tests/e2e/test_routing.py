"""Routing and path normalisation. Several recording upstreams stand behind
one gateway, so which one a request reached shows which route matched."""

import pytest

from conftest import assert_problem


@pytest.fixture
def multi(gateway, upstream_factory):
    """multi(routes) with routes naming upstreams "a".."e"; returns (gw, ups)."""

    def make(routes, **kw):
        ups = {n: upstream_factory() for n in "abcde"}
        gw = gateway(upstreams={n: {"targets": [u.addr]} for n, u in ups.items()}, routes=routes, **kw)
        return gw, ups

    return make


def hit(gw, ups, target, host="gw.test", method="GET"):
    """Sends one request; returns (status, name of the upstream that got it or None)."""
    before = {n: len(u.started) for n, u in ups.items()}
    with gw.connect() as c:
        c.request(method, target, host=host)
        r = c.read_response(method)
    got = [n for n, u in ups.items() if len(u.started) > before[n]]
    assert len(got) <= 1, f"{target} reached several upstreams: {got}"
    if got:
        ups[got[0]].wait_for(before[got[0]] + 1)
    return r.status, (got[0] if got else None), r


def test_host_exact_wildcard_and_any(multi):
    gw, ups = multi([
        {"match": {"host": "api.example.com", "path": "/**"}, "upstream": "a"},
        {"match": {"host": "*.example.com", "path": "/**"}, "upstream": "b"},
        {"match": {"path": "/**"}, "upstream": "c"},
    ])
    assert hit(gw, ups, "/x", host="api.example.com")[:2] == (200, "a")
    assert hit(gw, ups, "/x", host="API.Example.COM")[:2] == (200, "a")
    assert hit(gw, ups, "/x", host="api.example.com:8080")[:2] == (200, "a")
    assert hit(gw, ups, "/x", host="shop.example.com")[:2] == (200, "b")
    assert hit(gw, ups, "/x", host="example.com")[:2] == (200, "c")
    assert hit(gw, ups, "/x", host="other.org")[:2] == (200, "c")
    assert hit(gw, ups, "/x", host="a.b.example.com")[:2] == (200, "c")  # "*" is one label


def test_host_only_routes_404_for_other_hosts(multi):
    gw, ups = multi([{"match": {"host": "api.example.com", "path": "/**"}, "upstream": "a"}])
    status, got, r = hit(gw, ups, "/x", host="evil.example.com")
    assert got is None
    assert_problem(r, 404)


def test_methods(multi):
    gw, ups = multi([
        {"match": {"path": "/orders/**", "methods": ["GET", "HEAD"]}, "upstream": "a"},
        {"match": {"path": "/orders/**"}, "upstream": "b"},
        {"match": {"path": "/only-post", "methods": ["POST"]}, "upstream": "c"},
    ])
    assert hit(gw, ups, "/orders/1")[:2] == (200, "a")
    assert hit(gw, ups, "/orders/1", method="HEAD")[:2] == (200, "a")
    assert hit(gw, ups, "/orders/1", method="DELETE")[:2] == (200, "b")
    assert hit(gw, ups, "/only-post", method="POST")[:2] == (200, "c")
    status, got, r = hit(gw, ups, "/only-post", method="GET")
    assert got is None
    assert_problem(r, 404)


def test_single_and_double_star(multi):
    gw, ups = multi([
        {"match": {"path": "/a/*/c"}, "upstream": "a"},
        {"match": {"path": "/files/**"}, "upstream": "b"},
        {"match": {"path": "/exact"}, "upstream": "c"},
    ])
    assert hit(gw, ups, "/a/b/c")[:2] == (200, "a")
    assert hit(gw, ups, "/a/anything-here/c?q=1")[:2] == (200, "a")
    for target in ("/a/b/x/c", "/a/c", "/a/b/c/d", "/exact/more", "/exac", "/filesx", "/"):
        status, got, r = hit(gw, ups, target)
        assert got is None, f"{target} matched {got}"
        assert_problem(r, 404)
    assert hit(gw, ups, "/files")[:2] == (200, "b")
    assert hit(gw, ups, "/files/")[:2] == (200, "b")
    assert hit(gw, ups, "/files/x/y/z.txt")[:2] == (200, "b")
    assert hit(gw, ups, "/exact")[:2] == (200, "c")


def test_most_specific_wins(multi):
    # Declared least specific first, so config order cannot be what decides.
    gw, ups = multi([
        {"match": {"path": "/api/**"}, "upstream": "a"},
        {"match": {"path": "/api/*"}, "upstream": "b"},
        {"match": {"path": "/api/orders/**"}, "upstream": "c"},
        {"match": {"path": "/api/*/items"}, "upstream": "d"},
        {"match": {"path": "/api/orders/items"}, "upstream": "e"},
    ])
    assert hit(gw, ups, "/api/x/y/z")[:2] == (200, "a")
    assert hit(gw, ups, "/api/foo")[:2] == (200, "b")           # '*' over '**'
    assert hit(gw, ups, "/api/orders/1")[:2] == (200, "c")      # more literal segments
    assert hit(gw, ups, "/api/users/items")[:2] == (200, "d")
    assert hit(gw, ups, "/api/orders/items")[:2] == (200, "e")  # all literal


def test_host_beats_path_specificity(multi):
    gw, ups = multi([
        {"match": {"path": "/api/orders/items"}, "upstream": "a"},
        {"match": {"host": "*.example.com", "path": "/**"}, "upstream": "b"},
    ])
    assert hit(gw, ups, "/api/orders/items", host="x.example.com")[:2] == (200, "b")
    assert hit(gw, ups, "/api/orders/items", host="other.org")[:2] == (200, "a")


def test_strip_prefix(multi):
    gw, ups = multi([{"match": {"path": "/api/v1/**"}, "upstream": "a", "strip": "/api/v1"}])
    for target, expect in (("/api/v1/orders/7?x=1&y=%2F", "/orders/7?x=1&y=%2F"), ("/api/v1", "/"),
                           ("/api/v1/", "/")):
        status, got, _ = hit(gw, ups, target)
        assert (status, got) == (200, "a")
        assert ups["a"].requests[-1].target == expect, (target, ups["a"].requests[-1])
        assert ups["a"].requests[-1].header("X-Forwarded-Prefix") == "/api/v1"


def test_no_route_is_404_problem_json(multi):
    gw, ups = multi([{"match": {"path": "/api/**"}, "upstream": "a"}])
    status, got, r = hit(gw, ups, "/nothing/here?x=1")
    assert got is None
    doc = assert_problem(r, 404)
    assert doc["instance"].startswith("/nothing/here")
    assert all(u.started == [] for u in ups.values())


# -- path normalisation ------------------------------------------------------

NORMALISED = [
    ("/public/./x", "/public/x"),
    ("/public//x", "/public/x"),
    ("//public///x//", "/public/x/"),
    ("/public/a/../x", "/public/x"),
    ("/public/a/%2e%2e/x", "/public/x"),
    ("/public/a/%2E%2E/x", "/public/x"),
    ("/public/a/.%2e/x", "/public/x"),
    ("/public/%2e/x", "/public/x"),
    ("/public/%41%7e%2D", "/public/A~-"),
    ("/public/x?p=../../admin&q=%2F%00", "/public/x?p=../../admin&q=%2F%00"),
]


@pytest.mark.parametrize("target,expected", NORMALISED)
def test_path_normalised_before_forwarding(multi, target, expected):
    gw, ups = multi([{"match": {"path": "/public/**"}, "upstream": "a"}])
    status, got, r = hit(gw, ups, target)
    assert (status, got) == (200, "a"), r
    assert ups["a"].requests[-1].target == expected


def test_kept_escapes_are_forwarded_encoded(multi):
    gw, ups = multi([{"match": {"path": "/public/**"}, "upstream": "a"}])
    status, got, r = hit(gw, ups, "/public/caf%c3%a9%20x")
    assert (status, got) == (200, "a")
    assert ups["a"].requests[-1].target.lower() == "/public/caf%c3%a9%20x"


ESCAPES_TO_ADMIN = [
    "/public/../admin",
    "/public/%2e%2e/admin",
    "/public/%2E%2E/admin",
    "/public/.%2e/admin",
    "/public/%2e./admin",
    "/public/./../admin",
    "/public//../admin",
    "/public/x/../../admin",
]


@pytest.mark.parametrize("target", ESCAPES_TO_ADMIN)
def test_public_route_never_reaches_admin(multi, target):
    gw, ups = multi([{"match": {"path": "/public/**"}, "upstream": "a"}])
    status, got, r = hit(gw, ups, target)
    if got is None:
        assert status in (400, 404)
        assert_problem(r, status)
    else:
        # e.g. "/public//../admin" may fairly become "/public/admin"
        seen = ups[got].requests[-1].target
        assert seen.startswith("/public/") and ".." not in seen and "%2" not in seen.lower(), seen


def test_dot_segments_routed_by_normalised_path(multi):
    gw, ups = multi([{"match": {"path": "/public/**"}, "upstream": "a"},
                     {"match": {"path": "/admin/**"}, "upstream": "b"}])
    status, got, r = hit(gw, ups, "/public/../admin/users")
    assert (status, got) == (200, "b")
    assert ups["b"].requests[-1].target == "/admin/users"
    assert ups["a"].started == []


REFUSED = [
    "/public/..%2Fadmin",
    "/public/..%2fadmin",
    "/public/a%2Fb",
    "/public/..%5Cadmin",
    "/public/a%5cb",
    "/public/..\\admin",
    "/public/a\\b",
    "/public/..;/admin",
    "/public/x;jsessionid=1",
    "/public/%00",
    "/public/a%00.txt",
    "/public/%0a",
    "/public/%1f",
    "/public/%zz",
    "/public/%4",
    "/public/%",
    "/..",
    "/public/../../admin",
    "/public/%2e%2e/%2e%2e/admin",
]


@pytest.mark.parametrize("target", REFUSED)
def test_ambiguous_paths_refused_400(multi, target):
    gw, ups = multi([{"match": {"path": "/public/**"}, "upstream": "a"},
                     {"match": {"path": "/**"}, "upstream": "b"}])
    status, got, r = hit(gw, ups, target)
    assert got is None, f"{target!r} reached upstream {got} as {ups[got].requests[-1].target!r}"
    assert_problem(r, 400)


def test_target_not_starting_with_slash_refused(multi):
    gw, ups = multi([{"match": {"path": "/**"}, "upstream": "a"}])
    status, got, r = hit(gw, ups, "admin")
    assert got is None
    assert_problem(r, 400)


def test_absolute_form_target_routed_and_forwarded_consistently(multi):
    """RFC 9112 3.2.2: with an absolute-form target the authority replaces
    Host. Whatever the gateway does, the host it routes on and the Host the
    upstream sees must agree (or it refuses the request)."""
    gw, ups = multi([{"match": {"host": "api.example.com", "path": "/**"}, "upstream": "a"},
                     {"match": {"path": "/**"}, "upstream": "b"}])
    status, got, r = hit(gw, ups, "http://other.example/x", host="api.example.com")
    if got is None:
        assert_problem(r, 400)
        return
    seen = ups[got].requests[-1]
    assert seen.target == "/x"
    assert (got, seen.header("Host")) in (("a", "api.example.com"), ("b", "other.example")), \
        f"routed to {got} but forwarded with Host {seen.header('Host')}"


def test_route_files_single_route_and_non_lua_ignored(gateway, upstream_factory):
    a, b = upstream_factory(), upstream_factory()
    files = {
        "10-one.lua": 'local gh = require "gatehouse"\n'
                      'return gh.route { name = "one", match = { path = "/one/**" }, upstream = "a" }\n',
        "20-two.lua": 'local gh = require "gatehouse"\n'
                      'return { gh.route { match = { path = "/two" }, upstream = "b" },\n'
                      '         gh.route { match = { path = "/three" }, upstream = "a" } }\n',
        "README.md": "this is not Lua and must not be loaded (\n",
        "30-off.lua.disabled": "syntax error here (\n",
    }
    gw = gateway(upstreams={"a": {"targets": [a.addr]}, "b": {"targets": [b.addr]}}, route_files=files)
    ups = {"a": a, "b": b}
    assert hit(gw, ups, "/one/x")[:2] == (200, "a")
    assert hit(gw, ups, "/two")[:2] == (200, "b")
    assert hit(gw, ups, "/three")[:2] == (200, "a")
