"""Lua route policies end to end (docs/POLICIES.md): `policy(req, claims)`,
`on_response(res, claims)`, the outcomes, gh.ctx / gh.log / gh.sleep, errors,
the time budget and the sandbox.

Policies report what they saw in two ways: by setting request headers (read
back from the recording upstream, which proves what was proxied) or by
answering gh.respond with a JSON body built by a small encoder in the route
file. Every request a policy (or a policy error) answers also proves that
neither recording upstream received anything.

One gateway (one worker) with many routes serves most of the module; the
budget tests each get a gateway of their own with `lua = { budget = 0.1 }`
(a policy that escaped the budget would hang the worker for later tests).
Load-time refusals use `gatehouse -t`; `gatehouse test DIR` is exercised at
the end.
"""

import itertools
import os
import re
import secrets
import select
import subprocess
import time
from urllib.parse import parse_qs, quote

import jwt
import pytest

from conftest import GATEHOUSE_BIN, Gateway, assert_problem, challenge, free_port, make_config, wait_until
from rawhttp import RawConn
from recording_upstream import RecordingUpstream

ISS = "https://sso.example.com/realms/shop"
ISS_CUSTOM = "https://sso.example.com/realms/custom"
AUD = "orders-api"
REALM = "shop"
SECRET = "policy-tests-hmac-secret-0123456789-abcdefghijklmnopqrstuvwxyz!"  # 64 bytes
ROUTE_FILE = "50-policy.lua"

_seq = itertools.count(1)


def token(iss=ISS, **kw):
    """An HS256 token for the shop issuers; keyword None removes a claim."""
    now = int(time.time())
    c = {"iss": iss, "aud": AUD, "sub": "alice", "iat": now, "exp": now + 300,
         "jti": f"jti-{next(_seq)}-{secrets.token_hex(4)}"}
    for k, v in kw.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return jwt.encode(c, SECRET, algorithm="HS256")


def line_of(text, marker):
    """1-based line number of the only line of text containing marker."""
    hits = [i + 1 for i, ln in enumerate(text.splitlines()) if marker in ln]
    assert len(hits) == 1, f"marker {marker!r} on lines {hits}"
    return hits[0]


# ---------------------------------------------------------------------------
# Lua shared by the route files: a JSON encoder (sorted keys, so the output
# is deterministic) and a list helper for query values.

LUA_HELPERS = r'''
local function esc(s)
  return (s:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end))
end

local json
json = function(v)
  local t = type(v)
  if t == "nil" then return "null"
  elseif t == "boolean" then return tostring(v)
  elseif t == "number" then return string.format("%.14g", v)
  elseif t == "string" then return '"' .. esc(v) .. '"'
  elseif t == "table" then
    local keys, n = {}, #v
    for k in pairs(v) do keys[#keys + 1] = k end
    if n > 0 and n == #keys then
      local out = {}
      for i = 1, n do out[i] = json(v[i]) end
      return "[" .. table.concat(out, ",") .. "]"
    end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    local out = {}
    for _, k in ipairs(keys) do out[#out + 1] = json(tostring(k)) .. ":" .. json(v[k]) end
    return "{" .. table.concat(out, ",") .. "}"
  end
  return json(tostring(v))
end

local JSON = { ["Content-Type"] = "application/json" }

local function list(v)
  if v == nil then return {} elseif type(v) == "table" then return v end
  return { v }
end

local function split(s)
  local out = {}
  for w in s:gmatch("[^,]+") do out[#out + 1] = w end
  return out
end
'''

# The main route file. Markers (--@name) locate lines for file:line checks.
MAIN_ROUTES = r'''local gh = require "gatehouse"
''' + LUA_HELPERS + r'''
local PROBE_FILE = "@PROBE@"
local PWNED = "@PWNED@"

-- each returns something truthy only if the sandbox let it through
local probes = {
  io_open = function() return io.open("/etc/hostname", "r") end,
  io_lines = function() return io.lines("/etc/hostname") end,
  io_write_file = function() local f = io.open(PWNED .. ".io", "w"); f:write("x"); f:close(); return true end,
  os_exit = function() return os.exit end,
  os_execute = function() os.execute("touch " .. PWNED .. ".exec"); return os.execute end,
  require_ffi = function() return require("ffi") end,
  loaded_ffi = function() return package.loaded.ffi end,
  require_io = function() return require("io") end,
  require_debug = function() return require("debug") end,
  require_os_exit = function() return require("os").exit end,
  debug_getinfo = function() return debug.getinfo(1) end,
  debug_sethook = function() return debug.sethook end,
  dofile = function() return dofile(PROBE_FILE) end,
  loadfile = function() local f = loadfile(PROBE_FILE); return f and f() end,
  load_bytecode = function()
    local f = load(string.dump(function() return "dumped" end)); return f and f()
  end,
  loadstring_bytecode = function()
    local f = loadstring(string.dump(function() return "dumped" end)); return f and f()
  end,
  loadlib = function() return package.loadlib("libc.so.6", "*") end,
  getfenv_io = function() return getfenv(0).io end,
  global_io = function() return _G.io end,
  -- what remains
  os_allowed = function()
    return os.time() > 0 and os.clock() >= 0 and type(os.date("!%Y-%m-%d")) == "string"
      and type(os.getenv("PATH")) == "string" and "os-ok"
  end,
  text_load = function() local f = load("return 40 + 2"); return f and f() end,
}

return {
  gh.route {
    name = "pol-ok", match = { path = "/ok/**" }, upstream = "up",
  },

  gh.route {
    name = "pol-fields", match = { path = "/fields/**" }, upstream = "up",
    policy = function(req, claims)
      req.headers["X-Seen-Method"] = req.method
      req.headers["X-Seen-Path"] = req.path
      req.headers["X-Seen-Host"] = req.host
      req.headers["X-Seen-Ip"] = req.client_ip
      req.headers["X-Seen-Id"] = req.id
      req.headers["X-Seen-Claims"] = type(claims)
    end,
  },

  gh.route {
    name = "pol-setpath", match = { path = "/api/setpath/**" }, upstream = "up", strip = "/api",
    policy = function(req)
      req.headers["X-Seen-Path"] = req.path
      local m = req.headers["X-Mode"]
      if m == "path" then req:set_path("/v2/target")
      elseif m == "qtable" then req:set_query({ a = "1", b = "x y&z=" })
      elseif m == "qlist" then req:set_query({ r = { "1", "2" } })
      elseif m == "qstring" then req:set_query("raw=1&z")
      elseif m == "qnil" then req:set_query(nil)
      elseif m == "both" then req:set_path("/both"); req:set_query({ n = "5" })
      elseif m == "badpath" then req:set_path("relative/path")
      elseif m == "dotpath" then req:set_path("/a/../b")
      end
    end,
  },

  gh.route {
    name = "pol-query", match = { path = "/query/**" }, upstream = "up",
    policy = function(req)
      local q = req.query
      local n = 0
      for _ in pairs(q) do n = n + 1 end
      return gh.respond(200, json({ q = q, n = n, type = type(q), missing_nil = q.missing == nil }), JSON)
    end,
  },

  gh.route {
    name = "pol-hdr-read", match = { path = "/hdr/read" }, upstream = "up",
    policy = function(req)
      return gh.respond(200, json({
        multi = req.headers["x-multi"],
        upper = req.headers["X-CAMEL-CASE"],
        lower = req.headers["x-camel-case"],
        absent_nil = req.headers["X-Absent"] == nil,
        ua = req.headers["user-agent"],
      }), JSON)
    end,
  },

  gh.route {
    name = "pol-hdr-write", match = { path = "/hdr/write" }, upstream = "up",
    policy = function(req)
      req.headers["X-Added"] = "new"
      req.headers["x-replace"] = "replaced"
      req.headers["X-Remove"] = nil
      req.headers["X-Number"] = 42
      req.headers["X-Added-Read"] = req.headers["x-added"]
    end,
  },

  gh.route {
    name = "pol-hdr-inject", match = { path = "/hdr/inject" }, upstream = "up",
    policy = function(req)
      req.headers["X-Inj"] = "a\r\nX-Injected: 1"
    end,
  },

  gh.route {
    name = "pol-managed", match = { path = "/managed" }, upstream = "up",
    policy = function(req)
      local n = req.headers["X-Target"]
      if req.headers["X-Mode"] == "del" then req.headers[n] = nil else req.headers[n] = "evil" end
    end,
  },

  gh.route {
    name = "pol-fwd", match = { path = "/fwd" }, upstream = "up", auth = "hs",
    forward_claims = { ["X-User-Id"] = "sub" },
    policy = function(req, claims)
      req.headers["X-Saw-User"] = tostring(req.headers["X-User-Id"])
      req.headers["X-User-Id"] = "policy-value"
    end,
  },

  gh.route {
    name = "pol-claims", match = { path = "/claims" }, upstream = "up", auth = "hs",
    policy = function(req, claims)
      local org = claims.org
      return gh.respond(200, json({
        sub = claims.sub, sub_idx = claims["sub"], aud = claims.aud,
        org = org, org_id = org.id, tag2 = org.tags[2], ntags = #org.tags, tags_type = type(org.tags),
        deep = claims.org.deep.level,
        null_is_nil = claims.nothing == nil, absent_is_nil = claims.absent == nil,
        flag = claims.flag, num = claims.num,
        get_has_role = claims:get("has_role"), get_sub = claims:get("sub"),
      }), JSON)
    end,
  },

  gh.route {
    name = "pol-noauth", match = { path = "/noauth" }, upstream = "up",
    policy = function(req, claims)
      req.headers["X-Claims-Type"] = type(claims)
    end,
  },

  gh.route {
    name = "pol-roles", match = { path = "/roles/*" }, upstream = "up", auth = "hs",
    policy = function(req, claims) return role_report(req, claims) end,
  },

  gh.route {
    name = "pol-roles-custom", match = { path = "/roles-custom/*" }, upstream = "up", auth = "custom",
    policy = function(req, claims) return role_report(req, claims) end,
  },

  gh.route {
    name = "pol-deny", match = { path = "/deny" }, upstream = "up", auth = "hs",
    policy = function(req, claims)
      local q = req.query
      local opts = nil
      if q.scope then opts = { scope = q.scope } end
      return gh.deny(tonumber(q.status), q.detail, opts)
    end,
    on_response = function(res) res.headers["X-On-Response"] = "ran" end,
  },

  gh.route {
    name = "pol-deny-open", match = { path = "/deny-open" }, upstream = "up",
    policy = function(req)
      return gh.deny(tonumber(req.query.status), req.query.detail)
    end,
  },

  gh.route {
    name = "pol-redirect", match = { path = "/redirect" }, upstream = "up",
    policy = function(req)
      local q = req.query
      return gh.redirect(q.to, q.status and tonumber(q.status))
    end,
    on_response = function(res) res.headers["X-On-Response"] = "ran" end,
  },

  gh.route {
    name = "pol-respond", match = { path = "/respond" }, upstream = "up",
    policy = function(req)
      local m = req.query.mode
      if m == "full" then
        return gh.respond(201, "made here", { ["X-A"] = "1", ["Cache-Control"] = "no-store" })
      elseif m == "plain" then return gh.respond(200, "plain body")
      elseif m == "ct" then return gh.respond(202, '{"ok":true}', { ["Content-Type"] = "application/json" })
      elseif m == "503" then return gh.respond(503, "down for maintenance")
      elseif m == "status" then return gh.respond(tonumber(req.query.status), "x")
      elseif m == "inject" then return gh.respond(200, "x", { ["X-Inj"] = "a\r\nX-Injected: 1" })
      end
    end,
    on_response = function(res) res.headers["X-On-Response"] = "ran" end,
  },

  gh.route {
    name = "pol-toomany", match = { path = "/toomany" }, upstream = "up",
    policy = function(req) return gh.too_many(tonumber(req.query.s)) end,
  },

  gh.route {
    name = "pol-switch", match = { path = "/switch/*" }, upstream = "up",
    policy = function(req)
      if req.path == "/switch/go" then
        gh.upstream("second")
        req.headers["X-After-Switch"] = "yes"
      elseif req.path == "/switch/deny" then
        gh.upstream("second")
        return gh.deny(403, "denied after switching")
      elseif req.path == "/switch/unknown" then
        gh.upstream("no-such-upstream")
      end
    end,
  },

  gh.route {
    name = "pol-noreturn", match = { path = "/noreturn/*" }, upstream = "up",
    policy = function(req)
      if req.path == "/noreturn/deny" then gh.deny(403, "denied without return")
      elseif req.path == "/noreturn/respond" then gh.respond(200, "answered without return")
      elseif req.path == "/noreturn/redirect" then gh.redirect("https://elsewhere.test/x")
      elseif req.path == "/noreturn/toomany" then gh.too_many(3)
      end
      req.headers["X-After"] = "went on"
    end,
  },

  gh.route {
    name = "pol-twice", match = { path = "/twice" }, upstream = "up",
    policy = function(req)
      local m = req.query.mode
      if m == "deny-respond" then gh.deny(403, "first"); return gh.respond(200, "second")
      elseif m == "deny-deny" then gh.deny(403, "first"); return gh.deny(401, "second")
      elseif m == "respond-redirect" then gh.respond(200, "first"); return gh.redirect("https://x.test/")
      elseif m == "toomany-deny" then gh.too_many(1); return gh.deny(403, "second")
      elseif m == "pcall" then
        gh.deny(403, "first")
        pcall(gh.respond, 200, "second")
        pcall(gh.redirect, "https://x.test/")
      end
    end,
  },

  gh.route {
    name = "pol-onresp", match = { path = "/onresp/**" }, upstream = "up",
    policy = function(req)
      gh.ctx.marker = req.headers["X-Marker"]
      gh.ctx.count = (gh.ctx.count or 0) + 1
    end,
    on_response = function(res, claims)
      res.headers["Server"] = nil
      res.headers["X-Status-Seen"] = res.status
      res.headers["X-Up-Seen"] = tostring(res.headers["x-upstream"])
      res.headers["X-Ctx"] = tostring(gh.ctx.marker)
      res.headers["X-Ctx-Count"] = gh.ctx.count
      res.headers["X-Resp-Claims"] = type(claims)
    end,
  },

  gh.route {
    name = "pol-onresp-auth", match = { path = "/onresp-auth" }, upstream = "up", auth = "hs",
    policy = function(req, claims) gh.ctx.sub = claims.sub end,
    on_response = function(res, claims)
      res.headers["X-Ctx-Sub"] = gh.ctx.sub
      res.headers["X-Resp-Sub"] = claims.sub
    end,
  },

  gh.route {
    name = "pol-onresp-status", match = { path = "/onresp-status" }, upstream = "up",
    on_response = function(res) res.status = 299 end,
  },

  gh.route {
    name = "pol-onresp-err", match = { path = "/onresp-err" }, upstream = "up",
    on_response = function(res)
      error("resp-boom") --@respboom
    end,
  },

  gh.route {
    name = "pol-log", match = { path = "/log" }, upstream = "up",
    policy = function(req)
      local m = req.headers["X-Marker"]
      gh.log.info("policy-info-" .. m, 42, true)
      gh.log.warn("policy-warn-" .. m)
      gh.log.error("policy-error-" .. m, nil)
    end,
  },

  gh.route {
    name = "pol-sleep", match = { path = "/sleep" }, upstream = "up",
    policy = function(req)
      gh.sleep(tonumber(req.query.s))
      req.headers["X-Slept"] = req.query.s
    end,
  },

  gh.route {
    name = "pol-error", match = { path = "/error/*" }, upstream = "up",
    policy = function(req)
      if req.path == "/error/raise" then
        error("boom-marker " .. req.id) --@boom
      elseif req.path == "/error/nil" then
        local t = nil
        t.x = req.id --@nilindex
      end
    end,
  },

  gh.route {
    name = "pol-argerr", match = { path = "/argerr/*" }, upstream = "up",
    policy = function(req) --@argpolicy
      if req.path == "/argerr/redirect" then
        return gh.redirect("/x", 200) --@argredirect
      elseif req.path == "/argerr/deny" then
        return gh.deny(200, "x") --@argdeny
      elseif req.path == "/argerr/respond" then
        return gh.respond(200, "x", { ["Bad Name"] = "v" }) --@argrespond
      elseif req.path == "/argerr/noreturn" then
        gh.redirect("/x", 200) --@argnoreturn
      end
    end,
  },

  gh.route {
    name = "pol-onresp-managed", match = { path = "/onresp-managed" }, upstream = "up",
    policy = function(req)
      gh.ctx.target, gh.ctx.mode = req.headers["X-Target"], req.headers["X-Mode"]
    end,
    on_response = function(res)
      if gh.ctx.mode == "del" then res.headers[gh.ctx.target] = nil else res.headers[gh.ctx.target] = "7" end
    end,
  },

  gh.route {
    name = "pol-onresp-sleep", match = { path = "/onresp-sleep" }, upstream = "up",
    on_response = function(res)
      gh.sleep(0.05)
      res.headers["X-After-Sleep"] = "1"
    end,
  },

  gh.route {
    name = "pol-badret", match = { path = "/badret" }, upstream = "up",
    policy = function(req)
      local k = req.query.kind
      if k == "number" then return 42
      elseif k == "string" then return "deny"
      elseif k == "table" then return {}
      elseif k == "true" then return true
      elseif k == "function" then return function() end
      end
    end,
  },

  gh.route {
    name = "pol-spin", match = { path = "/spin" }, upstream = "up",
    policy = function(req) while true do end end,
  },

  gh.route {
    name = "pol-probe", match = { path = "/probe" }, upstream = "up",
    policy = function(req)
      local ok, v = pcall(probes[req.headers["X-Probe"]])
      if ok and v then return gh.respond(200, "OK " .. tostring(v)) end
      return gh.respond(200, "BLOCKED " .. tostring(v))
    end,
  },
}
'''

# role_report is used by two routes above: defined before the return.
ROLE_REPORT = r'''
local function role_report(req, claims)
  local q = req.query
  local out = { role = {}, any = {}, client = {}, scope = {}, authority = {} }
  for _, r in ipairs(list(q.role)) do out.role[r] = claims:has_role(r) end
  for _, a in ipairs(list(q.any)) do out.any[a] = claims:has_any_role(split(a)) end
  for _, c in ipairs(list(q.client)) do
    local cl, r = c:match("^(.*):([^:]*)$")
    out.client[c] = claims:has_client_role(cl, r)
  end
  for _, s in ipairs(list(q.scope)) do out.scope[s] = claims:has_scope(s) end
  for _, a in ipairs(list(q.auth)) do out.authority[a] = claims:has_authority(a) end
  local auths = {}
  for i, a in ipairs(claims:authorities()) do auths[i] = a end
  out.authorities = auths
  return gh.respond(200, json(out), JSON)
end
'''

MAIN_ROUTES = MAIN_ROUTES.replace("\nreturn {\n", ROLE_REPORT + "\nreturn {\n", 1)

BUDGET_ROUTES = r'''local gh = require "gatehouse"

return {
  gh.route { name = "b-ok", match = { path = "/ok/**" }, upstream = "up" },
  gh.route {
    name = "b-spin", match = { path = "/spin" }, upstream = "up",
    policy = function(req) while true do end end,
  },
  gh.route {
    name = "b-spin-pcall", match = { path = "/spin-pcall" }, upstream = "up",
    policy = function(req)
      pcall(function() while true do end end)
      req.headers["X-Escaped"] = "pcall"
    end,
  },
  gh.route {
    name = "b-spin-pcall-loop", match = { path = "/spin-pcall-loop" }, upstream = "up",
    policy = function(req)
      for i = 1, 1e9 do pcall(function() while true do end end) end
      req.headers["X-Escaped"] = "pcall-loop"
    end,
  },
  gh.route {
    name = "b-spin-xpcall", match = { path = "/spin-xpcall" }, upstream = "up",
    policy = function(req)
      xpcall(function() error("x") end, function() while true do end end)
      req.headers["X-Escaped"] = "xpcall"
    end,
  },
  gh.route {
    name = "b-spin-coroutine", match = { path = "/spin-coroutine" }, upstream = "up",
    policy = function(req)
      local co = coroutine.create(function() while true do end end)
      coroutine.resume(co)
      req.headers["X-Escaped"] = "coroutine"
    end,
  },
  gh.route {
    name = "b-spin-load", match = { path = "/spin-load" }, upstream = "up",
    policy = function(req)
      local f = load("while true do end")
      f()
      req.headers["X-Escaped"] = "load"
    end,
  },
  gh.route {
    name = "b-spin-after-sleep", match = { path = "/spin-after-sleep" }, upstream = "up",
    policy = function(req)
      gh.sleep(0.05)
      while true do end
    end,
  },
  gh.route {
    name = "b-spin-resp", match = { path = "/spin-resp" }, upstream = "up",
    on_response = function(res) while true do end end,
  },
  gh.route {
    name = "b-sleep", match = { path = "/sleep" }, upstream = "up",
    policy = function(req)
      gh.sleep(0.15); gh.sleep(0.15)
      req.headers["X-Slept"] = "0.3"
    end,
  },
}
'''


# ---------------------------------------------------------------------------
# Environment


class Env:
    def __init__(self, gw, up, up2, text):
        self.gw = gw
        self.up = up
        self.up2 = up2
        self.text = text  # the route file's source, for file:line checks

    def send(self, target, method="GET", headers=(), tok=None, body=b"", rid=True, host="gw.test"):
        """One request on a fresh connection. rid=True sends a fresh
        X-Request-Id, False none. Returns (response, request id sent)."""
        hs = []
        if rid is True:
            rid = f"pol-{next(_seq)}-{secrets.token_hex(4)}"
        if rid:
            hs.append(("X-Request-Id", rid))
        if tok is not None:
            hs.append(("Authorization", f"Bearer {tok}"))
        hs += list(headers)
        with RawConn("127.0.0.1", self.gw.port, 10.0) as c:
            c.request(method, target, headers=hs, body=body, host=host)
            resp = c.read_response(method)
        return resp, rid

    def log_line(self, rid):
        return wait_until(lambda: next((l for l in self.gw.access_log() if l.get("request_id") == rid), None),
                          5.0, f"access-log line for {rid}:\n{self.gw.stderr()[-3000:]}")

    def text_lines(self, needle, timeout=5.0):
        """stderr text lines (not access-log JSON) containing needle; waits for one."""
        def find():
            return [l for l in self.gw.stderr().splitlines() if needle in l and not l.startswith("{")]
        return wait_until(find, timeout, lambda: f"a log line with {needle!r} in:\n{self.gw.stderr()[-3000:]}")

    def nothing_upstream(self):
        time.sleep(0.03)  # a forward, were there one, would have started by now
        for u in (self.up, self.up2):
            assert u.started == [], f"an upstream received a request: {u.started!r}"
            assert u.requests == []
            assert u.bytes_received == 0, f"an upstream received {u.bytes_received} bytes"

    def proxied(self, resp, up=None):
        """resp came from the (given) recording upstream; returns what it received."""
        up = up or self.up
        assert resp.status == 200, f"expected 200, got {resp.status}: {resp.body[:400]!r} {resp.headers!r}"
        assert resp.header("X-Upstream") == "recording", resp.headers
        (req,) = up.wait_for(1)
        return req

    def still_serving(self):
        resp, _ = self.send("/ok/after")
        self.proxied(resp)
        self.up.clear()


def start_env(tmp_path_factory, name, route_text_fn, **cfg_extra):
    d = str(tmp_path_factory.mktemp(name))
    up = RecordingUpstream().start()
    up2 = RecordingUpstream().start()
    up.set_response("/onresp/server", 201, [("Server", "Recorder/1.0"), ("X-Upstream", "recording"),
                                            ("Content-Type", "text/plain")], b"from upstream")
    text = route_text_fn(d)
    port = free_port()
    issuers = {
        "hs": {"issuer": ISS, "audience": AUD, "secret": SECRET, "realm": REALM},
        "custom": {"issuer": ISS_CUSTOM, "audience": AUD, "secret": SECRET,
                   "roles": ["realm_access.roles", ["resource_access", "orders.api", "roles"], "app.groups"]},
    }
    cfg = make_config(port, {"up": {"targets": [up.addr]}, "second": {"targets": [up2.addr]}},
                      issuers=issuers, **cfg_extra)
    gw = Gateway(d, port, cfg, {ROUTE_FILE: text})
    try:
        gw.start()
    except BaseException:
        up.stop()
        up2.stop()
        raise
    return Env(gw, up, up2, text)


def stop_env(e):
    alive = e.gw.alive()
    rc = e.gw.stop()
    e.up.stop()
    e.up2.stop()
    assert alive, f"gateway died during the tests:\n{e.gw.stderr()[-4000:]}"
    assert rc == 0, f"gateway exit code after SIGTERM: {rc}\n{e.gw.stderr()[-4000:]}"


def _main_text(d):
    with open(os.path.join(d, "probe.lua"), "w") as f:
        f.write('return "probe-file-ran"\n')
    return (MAIN_ROUTES.replace("@PROBE@", os.path.join(d, "probe.lua"))
            .replace("@PWNED@", os.path.join(d, "pwned")))


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    e = start_env(tmp_path_factory, "policy", _main_text)
    yield e
    stop_env(e)


@pytest.fixture
def e(env):
    env.up.clear()
    env.up2.clear()
    assert env.gw.alive(), env.gw.stderr()[-4000:]
    return env


@pytest.fixture
def b(tmp_path_factory):
    """A gateway of its own per test: a policy that escapes the budget would
    hang its worker for every later test."""
    e = start_env(tmp_path_factory, "budget", lambda d: BUDGET_ROUTES, lua={"budget": 0.1})
    yield e
    stop_env(e)


def answered_problem(e, resp, status):
    """A gateway/policy-made problem+json answer; nothing reached an upstream."""
    doc = assert_problem(resp, status)
    e.nothing_upstream()
    return doc


def policy_error(e, resp):
    """A policy error: 500 problem+json, nothing upstream, gateway still serving."""
    doc = answered_problem(e, resp, 500)
    e.still_serving()
    return doc


# ---------------------------------------------------------------------------
# The request: req


def test_req_fields_seen_upstream(e):
    resp, rid = e.send("/fields/a/./b/../c//d?x=1", method="POST", body=b"hello", host="api.gw.test")
    up = e.proxied(resp)
    assert up.header("X-Seen-Method") == "POST"
    assert up.header("X-Seen-Path") == "/fields/a/c/d"
    assert up.header("X-Seen-Host") == "api.gw.test"
    assert up.header("X-Seen-Ip") == "127.0.0.1"
    assert up.header("X-Seen-Id") == rid == up.header("X-Request-Id")
    assert up.header("X-Seen-Claims") == "nil"
    assert up.path == "/fields/a/c/d" and up.query == "x=1"
    assert up.body == b"hello"


def test_req_id_generated_matches_upstream(e):
    resp, _ = e.send("/fields/gen", rid=False)
    up = e.proxied(resp)
    rid = up.header("X-Request-Id")
    assert rid and up.header("X-Seen-Id") == rid
    assert resp.header("X-Request-Id") == rid


def test_req_method_head_and_delete(e):
    for m in ("DELETE", "PUT", "HEAD"):
        e.up.clear()
        resp, _ = e.send("/fields/m", method=m)
        up = e.proxied(resp)
        assert up.method == m and up.header("X-Seen-Method") == m


def test_req_path_before_strip(e):
    resp, _ = e.send("/api/setpath/x/%7Euser")
    up = e.proxied(resp)
    assert up.header("X-Seen-Path") == "/api/setpath/x/~user"
    assert up.path == "/setpath/x/~user"


def test_req_query_parsed(e):
    resp, _ = e.send("/query/x?a=1&b=x%20y&r=1&r=2&r=3&flag&pct=%41%2F%3D%26&e=")
    assert resp.status == 200, resp
    doc = resp.json()
    assert doc["type"] == "table"
    assert doc["q"] == {"a": "1", "b": "x y", "r": ["1", "2", "3"], "flag": "", "pct": "A/=&", "e": ""}, doc
    assert doc["n"] == 6
    assert doc["missing_nil"] is True
    e.nothing_upstream()


def test_req_query_empty_table_without_query(e):
    resp, _ = e.send("/query/none")
    assert resp.status == 200, resp
    doc = resp.json()
    assert doc["type"] == "table" and doc["n"] == 0 and doc["q"] in ({}, []), doc
    e.nothing_upstream()


def test_req_headers_read_case_insensitively_and_joined(e):
    resp, _ = e.send("/hdr/read", headers=[("X-Multi", "a"), ("x-multi", "b"), ("X-Camel-Case", "V1"),
                                           ("User-Agent", "pol-test/1")])
    assert resp.status == 200, resp
    doc = resp.json()
    assert doc == {"multi": "a, b", "upper": "V1", "lower": "V1", "absent_nil": True, "ua": "pol-test/1"}, doc
    e.nothing_upstream()


def test_req_headers_set_replace_delete(e):
    resp, _ = e.send("/hdr/write", headers=[("X-Replace", "old1"), ("X-Replace", "old2"), ("X-Remove", "gone"),
                                            ("X-Keep", "kept")])
    up = e.proxied(resp)
    assert up.header_all("X-Added") == ["new"]
    assert up.header_all("X-Replace") == ["replaced"]
    assert up.header_all("X-Remove") == []
    assert up.header_all("X-Number") == ["42"]
    assert up.header_all("X-Added-Read") == ["new"]
    assert up.header_all("X-Keep") == ["kept"]


def test_req_header_value_with_crlf_never_injects(e):
    resp, _ = e.send("/hdr/inject")
    if resp.status == 500:
        answered_problem(e, resp, 500)
    else:
        up = e.proxied(resp)
        assert not up.has("X-Injected"), up.headers


MANAGED = ["Host", "host", "Content-Length", "Transfer-Encoding", "X-Request-Id", "x-request-id",
           "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Prefix", "X-Forwarded-Custom",
           "Forwarded", "Connection", "Keep-Alive", "TE", "Trailer", "Upgrade"]


@pytest.mark.parametrize("mode", ["set", "del"])
@pytest.mark.parametrize("name", MANAGED)
def test_req_managed_header_refused(e, name, mode):
    resp, _ = e.send("/managed", headers=[("X-Target", name), ("X-Mode", mode)])
    answered_problem(e, resp, 500)


def test_forward_claims_win_over_policy(e):
    resp, _ = e.send("/fwd", tok=token(sub="alice"), headers=[("X-User-Id", "forged")])
    up = e.proxied(resp)
    assert up.header("X-Saw-User") == "nil"  # the client's copy was dropped before the policy ran
    assert up.header_all("X-User-Id") == ["alice"]


@pytest.mark.parametrize("mode,path,query", [
    ("path", "/v2/target", "k=v"),
    ("both", "/both", "n=5"),
    ("qstring", "/setpath/p", "raw=1&z"),
    ("qnil", "/setpath/p", None),
])
def test_set_path_and_query(e, mode, path, query):
    resp, _ = e.send("/api/setpath/p?k=v", headers=[("X-Mode", mode)])
    up = e.proxied(resp)
    assert up.path == path, up.target
    assert up.query == query, up.target
    assert up.header("X-Seen-Path") == "/api/setpath/p"  # req.path is what the client asked for


def test_set_query_table_encoded(e):
    resp, _ = e.send("/api/setpath/p?k=v", headers=[("X-Mode", "qtable")])
    up = e.proxied(resp)
    assert up.path == "/setpath/p"
    assert parse_qs(up.query, keep_blank_values=True) == {"a": ["1"], "b": ["x y&z="]}, up.target


def test_set_query_table_with_list(e):
    resp, _ = e.send("/api/setpath/p", headers=[("X-Mode", "qlist")])
    up = e.proxied(resp)
    assert parse_qs(up.query, keep_blank_values=True) == {"r": ["1", "2"]}, up.target


@pytest.mark.parametrize("mode", ["badpath", "dotpath"])
def test_set_path_must_be_absolute_and_normalised(e, mode):
    resp, _ = e.send("/api/setpath/p", headers=[("X-Mode", mode)])
    policy_error(e, resp)


# ---------------------------------------------------------------------------
# The claims


def test_claims_fields_and_nested_tables(e):
    # built by hand: token() drops None, and "nothing" must be a JSON null
    now = int(time.time())
    tok = jwt.encode({"iss": ISS, "aud": AUD, "sub": "bob", "iat": now, "exp": now + 300,
                      "org": {"id": 7, "tags": ["a", "b", "c"], "deep": {"level": "three"}},
                      "nothing": None, "flag": True, "num": 1.5, "has_role": "a-claim-named-like-a-method"},
                     SECRET, algorithm="HS256")
    resp, _ = e.send("/claims", tok=tok)
    assert resp.status == 200, resp
    doc = resp.json()
    assert doc["sub"] == doc["sub_idx"] == doc["get_sub"] == "bob"
    assert doc["aud"] == AUD
    assert doc["org"] == {"id": 7, "tags": ["a", "b", "c"], "deep": {"level": "three"}}, doc
    assert doc["org_id"] == 7 and doc["tag2"] == "b" and doc["ntags"] == 3 and doc["tags_type"] == "table"
    assert doc["deep"] == "three"
    assert doc["null_is_nil"] is True and doc["absent_is_nil"] is True
    assert doc["flag"] is True and doc["num"] == 1.5
    assert doc["get_has_role"] == "a-claim-named-like-a-method"
    e.nothing_upstream()


def test_claims_nil_without_auth(e):
    resp, _ = e.send("/noauth")
    up = e.proxied(resp)
    assert up.header("X-Claims-Type") == "nil"


def roles_query(role=(), any_=(), client=(), scope=(), auth=()):
    pairs = [("role", r) for r in role] + [("any", a) for a in any_] + [("client", c) for c in client]
    pairs += [("scope", s) for s in scope] + [("auth", a) for a in auth]
    return "?" + "&".join(f"{k}={quote(v, safe=':,')}" for k, v in pairs)


def role_doc(e, path, tok, **q):
    resp, _ = e.send(path + roles_query(**q), tok=tok)
    assert resp.status == 200, resp
    doc = resp.json()
    e.nothing_upstream()
    for k in ("role", "any", "client", "scope", "authority"):
        if doc.get(k) == []:
            doc[k] = {}
    return doc


def test_roles_default_paths(e):
    tok = token(realm_access={"roles": ["USER", "ADMIN"]}, roles=["flat-role"],
                resource_access={"orders.api": {"roles": ["client-role"]}, "orders": {"api": {"roles": ["trap-role"]}}},
                scope="orders.read profile openid")
    doc = role_doc(e, "/roles/x", tok,
                   role=["USER", "ADMIN", "flat-role", "client-role", "trap-role", "nope"],
                   any_=["nope,flat-role", "x,y"],
                   client=["orders.api:client-role", "orders:client-role", "orders.api:trap-role", "orders.api:nope"],
                   scope=["orders.read", "orders", "profile", "read"],
                   auth=["ROLE_ADMIN", "ROLE_flat-role", "SCOPE_orders.read", "ADMIN", "SCOPE_nope",
                         "ROLE_client-role", "orders.read"])
    assert doc["role"] == {"USER": True, "ADMIN": True, "flat-role": True, "client-role": False,
                           "trap-role": False, "nope": False}, doc
    assert doc["any"] == {"nope,flat-role": True, "x,y": False}, doc
    # the client id is taken whole: "orders.api" is one key, never resource_access.orders.api
    assert doc["client"] == {"orders.api:client-role": True, "orders:client-role": False,
                             "orders.api:trap-role": False, "orders.api:nope": False}, doc
    assert doc["scope"] == {"orders.read": True, "orders": False, "profile": True, "read": False}, doc
    assert sorted(doc["authorities"]) == sorted(["ROLE_USER", "ROLE_ADMIN", "ROLE_flat-role", "SCOPE_orders.read",
                                                 "SCOPE_profile", "SCOPE_openid"]), doc
    assert doc["authority"] == {"ROLE_ADMIN": True, "ROLE_flat-role": True, "SCOPE_orders.read": True,
                                "ADMIN": False, "SCOPE_nope": False, "ROLE_client-role": False,
                                "orders.read": False}, doc


def test_roles_single_string_and_ignored_shapes(e):
    # a role path ending at a string counts; one ending at an object is ignored, without an error
    tok = token(roles="solo", realm_access={"roles": {"x": "y"}})
    doc = role_doc(e, "/roles/x", tok, role=["solo", "x", "y"], scope=["any"])
    assert doc["role"] == {"solo": True, "x": False, "y": False}, doc
    assert doc["scope"] == {"any": False}
    assert doc["authorities"] in (["ROLE_solo"],), doc


def test_roles_without_any_role_claims(e):
    doc = role_doc(e, "/roles/x", token(), role=["USER"], any_=["USER,ADMIN"], client=["orders.api:x"])
    assert doc["role"] == {"USER": False} and doc["any"] == {"USER,ADMIN": False}
    assert doc["client"] == {"orders.api:x": False}
    assert doc["authorities"] in ([], {}), doc


def test_roles_configured_paths_with_dotted_client_segment(e):
    tok = token(iss=ISS_CUSTOM, realm_access={"roles": ["R1"]},
                resource_access={"orders.api": {"roles": ["R2"]}, "orders": {"api": {"roles": ["TRAP"]}}},
                app={"groups": ["G1"]}, roles=["flat"])
    doc = role_doc(e, "/roles-custom/x", tok, role=["R1", "R2", "G1", "flat", "TRAP"],
                   any_=["flat,TRAP", "flat,G1"], client=["orders.api:R2", "orders.api:TRAP"],
                   auth=["ROLE_R2", "ROLE_flat"])
    # the default flat "roles" path is replaced by the configured list
    assert doc["role"] == {"R1": True, "R2": True, "G1": True, "flat": False, "TRAP": False}, doc
    assert doc["any"] == {"flat,TRAP": False, "flat,G1": True}, doc
    assert doc["client"] == {"orders.api:R2": True, "orders.api:TRAP": False}, doc
    assert sorted(doc["authorities"]) == ["ROLE_G1", "ROLE_R1", "ROLE_R2"], doc
    assert doc["authority"] == {"ROLE_R2": True, "ROLE_flat": False}, doc


def test_roles_configured_paths_through_non_tables(e):
    tok = token(iss=ISS_CUSTOM, realm_access=["not", "an", "object"], app="a string", resource_access=7)
    doc = role_doc(e, "/roles-custom/x", tok, role=["R1", "not", "a string"])
    assert doc["role"] == {"R1": False, "not": False, "a string": False}, doc


# ---------------------------------------------------------------------------
# Outcomes


def test_deny_403_problem(e):
    resp, rid = e.send("/deny?status=403&detail=ADMIN%20role%20required", tok=token())
    doc = answered_problem(e, resp, 403)
    assert doc["detail"] == "ADMIN role required", doc
    assert resp.header("X-On-Response") is None  # on_response only runs for upstream responses
    assert e.log_line(rid)["status"] == 403


@pytest.mark.parametrize("status", [400, 404, 409, 451, 503, 599])
def test_deny_other_statuses(e, status):
    resp, _ = e.send(f"/deny-open?status={status}&detail=nope")
    doc = answered_problem(e, resp, status)
    assert doc["detail"] == "nope"


def test_deny_401_carries_invalid_token_challenge(e):
    resp, _ = e.send("/deny?status=401&detail=session%20revoked", tok=token())
    doc = answered_problem(e, resp, 401)
    assert doc["detail"] == "session revoked"
    ch = challenge(resp)
    assert ch.get("realm") == REALM, ch
    assert ch.get("error") == "invalid_token", ch
    assert ch.get("error_description") == "session revoked", ch


def test_deny_403_with_scope_carries_insufficient_scope(e):
    resp, _ = e.send("/deny?status=403&detail=needs%20write&scope=orders.write", tok=token())
    doc = answered_problem(e, resp, 403)
    assert doc["detail"] == "needs write"
    ch = challenge(resp)
    assert ch.get("realm") == REALM, ch
    assert ch.get("error") == "insufficient_scope", ch
    assert ch.get("scope") == "orders.write", ch


@pytest.mark.parametrize("status", [200, 302, 399, 600])
def test_deny_status_out_of_range_is_an_error(e, status):
    resp, _ = e.send(f"/deny-open?status={status}&detail=x")
    policy_error(e, resp)


def test_redirect_default_302(e):
    resp, _ = e.send("/redirect?to=https%3A%2F%2Flogin.example.com%2Fstart%3Fnext%3D%2Fa")
    assert resp.status == 302, resp
    assert resp.header("Location") == "https://login.example.com/start?next=/a"
    assert resp.header("X-On-Response") is None
    e.nothing_upstream()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_statuses(e, status):
    resp, _ = e.send(f"/redirect?to=%2Fnew%2Fplace&status={status}")
    assert resp.status == status, resp
    assert resp.header("Location") == "/new/place"
    e.nothing_upstream()


@pytest.mark.parametrize("status", [200, 300, 304, 404])
def test_redirect_bad_status_is_an_error(e, status):
    resp, _ = e.send(f"/redirect?to=%2Fx&status={status}")
    policy_error(e, resp)


def test_redirect_location_with_crlf_never_injects(e):
    resp, _ = e.send("/redirect?to=%2Fx%0D%0ASet-Cookie%3A%20a%3Db")
    assert resp.header("Set-Cookie") is None, resp.headers
    if resp.status == 500:
        answered_problem(e, resp, 500)
    else:
        assert resp.status == 302
        e.nothing_upstream()


def test_respond_with_headers(e):
    resp, _ = e.send("/respond?mode=full")
    assert resp.status == 201, resp
    assert resp.body == b"made here"
    assert resp.header("X-A") == "1"
    assert resp.header("Cache-Control") == "no-store"
    assert resp.header("Content-Type").replace(" ", "").lower() == "text/plain;charset=utf-8"
    assert resp.header("X-On-Response") is None
    e.nothing_upstream()


def test_respond_defaults_and_content_type(e):
    resp, _ = e.send("/respond?mode=plain")
    assert resp.status == 200 and resp.body == b"plain body", resp
    assert resp.header("Content-Type").replace(" ", "").lower() == "text/plain;charset=utf-8"
    e.nothing_upstream()
    resp, _ = e.send("/respond?mode=ct")
    assert resp.status == 202 and resp.body == b'{"ok":true}', resp
    assert resp.header("Content-Type") == "application/json"
    e.nothing_upstream()
    resp, _ = e.send("/respond?mode=503")
    assert resp.status == 503 and resp.body == b"down for maintenance", resp
    e.nothing_upstream()


@pytest.mark.parametrize("status", [101, 199, 600])
def test_respond_bad_status_is_an_error(e, status):
    resp, _ = e.send(f"/respond?mode=status&status={status}")
    policy_error(e, resp)


def test_respond_header_with_crlf_never_injects(e):
    resp, _ = e.send("/respond?mode=inject")
    assert resp.header("X-Injected") is None, resp.headers
    if resp.status == 500:
        answered_problem(e, resp, 500)
    else:
        e.nothing_upstream()


@pytest.mark.parametrize("seconds,header", [(5, "5"), (1.2, "2"), (0.1, "1"), (30, "30")])
def test_too_many(e, seconds, header):
    resp, _ = e.send(f"/toomany?s={seconds}")
    answered_problem(e, resp, 429)
    assert resp.header("Retry-After") == header


def test_upstream_switch_goes_on(e):
    resp, _ = e.send("/switch/go")
    up = e.proxied(resp, e.up2)
    assert up.header("X-After-Switch") == "yes"  # gh.upstream is not final
    assert up.path == "/switch/go"
    assert e.up.started == [] and e.up.bytes_received == 0


def test_upstream_switch_then_deny(e):
    resp, _ = e.send("/switch/deny")
    doc = answered_problem(e, resp, 403)
    assert doc["detail"] == "denied after switching"


def test_upstream_unknown_name_is_an_error(e):
    resp, _ = e.send("/switch/unknown")
    policy_error(e, resp)


def test_deny_without_return_still_denies(e):
    resp, _ = e.send("/noreturn/deny")
    doc = answered_problem(e, resp, 403)
    assert doc["detail"] == "denied without return"


def test_other_outcomes_without_return(e):
    resp, _ = e.send("/noreturn/respond")
    assert resp.status == 200 and resp.body == b"answered without return", resp
    assert resp.header("X-Upstream") is None
    e.nothing_upstream()
    resp, _ = e.send("/noreturn/redirect")
    assert resp.status == 302 and resp.header("Location") == "https://elsewhere.test/x", resp
    e.nothing_upstream()
    resp, _ = e.send("/noreturn/toomany")
    answered_problem(e, resp, 429)
    assert resp.header("Retry-After") == "3"


@pytest.mark.parametrize("mode", ["deny-respond", "deny-deny", "respond-redirect", "toomany-deny"])
def test_second_answering_outcome_is_an_error(e, mode):
    resp, _ = e.send(f"/twice?mode={mode}")
    policy_error(e, resp)


def test_second_outcome_caught_by_pcall_never_overturns_the_first(e):
    resp, _ = e.send("/twice?mode=pcall")
    assert resp.status in (403, 500), resp
    answered_problem(e, resp, resp.status)
    assert resp.header("Location") is None


@pytest.mark.parametrize("kind", ["number", "string", "table", "true", "function"])
def test_bad_return_value_is_an_error(e, kind):
    resp, _ = e.send(f"/badret?kind={kind}")
    policy_error(e, resp)


def test_nil_return_proxies(e):
    resp, _ = e.send("/badret?kind=none")
    e.proxied(resp)


# ---------------------------------------------------------------------------
# on_response and gh.ctx


def test_on_response_reads_status_and_headers(e):
    resp, _ = e.send("/onresp/server", headers=[("X-Marker", "m-1")])
    assert resp.status == 201, resp
    assert resp.body == b"from upstream"
    assert resp.header("Server") is None, resp.headers
    assert resp.header("X-Status-Seen") == "201"
    assert resp.header("X-Up-Seen") == "recording"
    assert resp.header("X-Upstream") == "recording"
    assert resp.header("X-Resp-Claims") == "nil"
    (up,) = e.up.wait_for(1)
    assert up.path == "/onresp/server"


def test_ctx_shared_between_policy_and_on_response_per_request(e):
    for marker in ("first", "second"):
        resp, _ = e.send("/onresp/echo", headers=[("X-Marker", marker)])
        assert resp.status == 200, resp
        assert resp.header("X-Ctx") == marker
        assert resp.header("X-Ctx-Count") == "1"  # a fresh gh.ctx for each request
        assert resp.header("X-Status-Seen") == "200"


def test_on_response_gets_claims_and_ctx(e):
    resp, _ = e.send("/onresp-auth", tok=token(sub="carol"))
    assert resp.status == 200, resp
    assert resp.header("X-Ctx-Sub") == "carol"
    assert resp.header("X-Resp-Sub") == "carol"


def test_on_response_status_is_read_only(e):
    resp, _ = e.send("/onresp-status")
    assert resp.status in (200, 500), resp
    assert resp.status != 299
    e.up.wait_for(1)


def test_on_response_error_answers_500(e):
    resp, _ = e.send("/onresp-err")
    assert_problem(resp, 500)
    assert resp.header("X-Upstream") is None
    line = line_of(e.text, "--@respboom")
    lines = e.text_lines("resp-boom")
    assert any(f"{ROUTE_FILE}:{line}" in l for l in lines), lines
    e.up.clear()
    e.still_serving()


@pytest.mark.parametrize("mode", ["set", "del"])
@pytest.mark.parametrize("name", ["Content-Length", "Transfer-Encoding", "X-Request-Id", "Connection",
                                  "Keep-Alive", "Upgrade"])
def test_on_response_managed_header_refused(e, name, mode):
    resp, _ = e.send("/onresp-managed", headers=[("X-Target", name), ("X-Mode", mode)])
    assert_problem(resp, 500)
    assert resp.complete and resp.header("X-Upstream") is None, resp
    e.up.wait_for(1)
    e.up.clear()
    e.still_serving()


def test_on_response_that_waits_does_not_hang(e):
    # on_response must not wait; one that tries still gets an answer promptly
    t0 = time.monotonic()
    resp, _ = e.send("/onresp-sleep")
    assert time.monotonic() - t0 < 5.0
    assert resp.status in (200, 500), resp
    e.up.wait_for(1)
    e.up.clear()
    e.still_serving()


def test_on_response_not_run_for_gateway_answers(e):
    # a deny and a respond: neither went upstream, so on_response never ran
    resp, _ = e.send("/deny?status=403&detail=x", tok=token())
    assert resp.status == 403 and resp.header("X-On-Response") is None
    resp, _ = e.send("/respond?mode=plain")
    assert resp.status == 200 and resp.header("X-On-Response") is None
    e.nothing_upstream()


# ---------------------------------------------------------------------------
# gh.log


def test_log_lines_carry_request_id_and_route(e):
    marker = secrets.token_hex(6)
    resp, rid = e.send("/log", headers=[("X-Marker", marker)])
    e.proxied(resp)
    (info,) = e.text_lines(f"policy-info-{marker}")
    assert f"policy-info-{marker} 42 true" in info, info
    (warn,) = e.text_lines(f"policy-warn-{marker}")
    (err,) = e.text_lines(f"policy-error-{marker}")
    assert f"policy-error-{marker} nil" in err, err
    for ln in (info, warn, err):
        assert rid in ln, ln
        assert "pol-log" in ln, ln
    assert "warn" in warn.lower() and "error" in err.lower()


# ---------------------------------------------------------------------------
# gh.sleep


def test_sleep_waits_then_proxies(e):
    t0 = time.monotonic()
    resp, _ = e.send("/sleep?s=0.2")
    took = time.monotonic() - t0
    up = e.proxied(resp)
    assert up.header("X-Slept") == "0.2"
    assert took >= 0.19, took


def _peek_nothing(conn):
    """True when no response byte (nor EOF) has arrived on conn yet."""
    readable, _, _ = select.select([conn.sock], [], [], 0)
    return not readable and not conn.buf


def test_sleep_does_not_block_the_worker(e):
    # one worker: while A sleeps 0.8 s, B (sent later, sleeping 0.05 s) is
    # answered, and A is still pending when B's answer is in
    with RawConn("127.0.0.1", e.gw.port, 10.0) as a, RawConn("127.0.0.1", e.gw.port, 10.0) as bconn:
        a.request("GET", "/sleep?s=0.8")
        time.sleep(0.15)
        bconn.request("GET", "/sleep?s=0.05")
        rb = bconn.read_response()
        assert rb.status == 200 and rb.header("X-Upstream") == "recording", rb
        assert _peek_nothing(a), "A was answered before B: the sleep blocked the worker"
        ra = a.read_response()
        assert ra.status == 200, ra
    ups = e.up.wait_for(2)
    assert [u.header("X-Slept") for u in ups] == ["0.05", "0.8"]


def test_two_sleeps_overlap(e):
    t0 = time.monotonic()
    with RawConn("127.0.0.1", e.gw.port, 10.0) as a, RawConn("127.0.0.1", e.gw.port, 10.0) as bconn:
        a.request("GET", "/sleep?s=0.3")
        bconn.request("GET", "/sleep?s=0.3")
        ra = a.read_response()
        rb = bconn.read_response()
    took = time.monotonic() - t0
    assert ra.status == rb.status == 200, (ra, rb)
    assert took >= 0.29, took
    assert took < 0.58, f"two 0.3 s sleeps took {took:.3f} s: they did not overlap"


# ---------------------------------------------------------------------------
# Errors


def test_lua_error_answers_500_and_logs_route_and_line(e):
    resp, rid = e.send("/error/raise")
    policy_error(e, resp)
    line = line_of(e.text, "--@boom")
    lines = e.text_lines(f"boom-marker {rid}")
    assert any(re.search(rf"{re.escape(ROUTE_FILE)}:{line}\b", ln) and "pol-error" in ln for ln in lines), \
        f"no line naming pol-error and {ROUTE_FILE}:{line}: {lines}"
    assert e.log_line(rid)["status"] == 500


def test_runtime_error_names_file_line(e):
    resp, rid = e.send("/error/nil")
    policy_error(e, resp)
    line = line_of(e.text, "--@nilindex")
    lines = e.text_lines(f"{ROUTE_FILE}:{line}")
    assert any("pol-error" in l for l in lines), lines


@pytest.mark.parametrize("what", ["redirect", "deny", "respond", "noreturn"])
def test_outcome_argument_error_names_policy_line(e, what):
    # a bad argument to gh.* is the policy's error: the log points at its call
    resp, rid = e.send(f"/argerr/{what}")
    policy_error(e, resp)
    lines = e.text_lines(rid)
    if what == "noreturn":
        line = line_of(e.text, f"--@arg{what}")
        assert any(f"{ROUTE_FILE}:{line}:" in l for l in lines), f"no {ROUTE_FILE}:{line}: in {lines}"
    else:
        # `return gh.x(...)` is a tail call: Lua drops the policy's frame, so
        # the log names the line where the policy function starts, and says so
        line = line_of(e.text, "--@argpolicy")
        want = f"{ROUTE_FILE}:{line}: in the function that returned it:"
        assert any(want in l for l in lines), f"no {want} in {lines}"


def test_errors_repeatedly_gateway_keeps_serving(e):
    for _ in range(20):
        resp, _ = e.send("/error/raise")
        assert_problem(resp, 500)
    e.nothing_upstream()
    e.still_serving()


def test_default_budget_stops_spinning_policy(e):
    t0 = time.monotonic()
    resp, _ = e.send("/spin")
    assert time.monotonic() - t0 < 5.0
    policy_error(e, resp)


# ---------------------------------------------------------------------------
# Time budget (lua.budget = 0.1)


@pytest.mark.parametrize("path", ["/spin", "/spin-pcall", "/spin-pcall-loop", "/spin-xpcall", "/spin-coroutine",
                                  "/spin-load", "/spin-after-sleep"])
def test_budget_stops_policy(b, path):
    t0 = time.monotonic()
    resp, _ = b.send(path)
    took = time.monotonic() - t0
    assert took < 5.0, took
    assert_problem(resp, 500)
    b.nothing_upstream()
    b.still_serving()


def test_budget_stops_on_response(b):
    resp, _ = b.send("/spin-resp")
    assert_problem(resp, 500)
    b.up.clear()
    b.still_serving()


def test_budget_does_not_count_waits(b):
    resp, _ = b.send("/sleep")
    up = b.proxied(resp)
    assert up.header("X-Slept") == "0.3"


def test_budget_spin_does_not_stall_other_requests(b):
    # a spinning policy is stopped, and a request behind it is then served
    with RawConn("127.0.0.1", b.gw.port, 10.0) as a, RawConn("127.0.0.1", b.gw.port, 10.0) as c:
        a.request("GET", "/spin")
        c.request("GET", "/ok")
        rc = c.read_response()
        ra = a.read_response()
    assert rc.status == 200 and rc.header("X-Upstream") == "recording", rc
    assert_problem(ra, 500)


# ---------------------------------------------------------------------------
# Sandbox in policies

BLOCKED = ["io_open", "io_lines", "io_write_file", "os_exit", "os_execute", "require_ffi", "loaded_ffi",
           "require_io", "require_debug", "require_os_exit", "debug_getinfo", "debug_sethook", "dofile",
           "loadfile", "load_bytecode", "loadstring_bytecode", "loadlib", "getfenv_io", "global_io"]


@pytest.mark.parametrize("probe", BLOCKED)
def test_sandbox_blocks(e, probe):
    resp, _ = e.send("/probe", headers=[("X-Probe", probe)])
    if resp.status == 500:
        answered_problem(e, resp, 500)
    else:
        assert resp.status == 200, resp
        assert resp.body.startswith(b"BLOCKED"), f"{probe} escaped the sandbox: {resp.body!r}"
        e.nothing_upstream()
    for suffix in (".io", ".exec"):
        assert not os.path.exists(os.path.join(e.gw.dir, "pwned" + suffix)), f"{probe} wrote a file"


@pytest.mark.parametrize("probe,want", [("os_allowed", b"OK os-ok"), ("text_load", b"OK 42")])
def test_sandbox_keeps(e, probe, want):
    resp, _ = e.send("/probe", headers=[("X-Probe", probe)])
    assert resp.status == 200 and resp.body == want, resp


def test_os_exit_in_policy_does_not_stop_gateway(proxy, upstream):
    src = ('local gh = require "gatehouse"\n'
           'return {\n'
           '  gh.route { match = { path = "/exit" }, upstream = "up",\n'
           '             policy = function(req) os.exit(3) end },\n'
           '  gh.route { match = { path = "/ok" }, upstream = "up" },\n'
           '}\n')
    gw = proxy(route_files={ROUTE_FILE: src})
    with gw.connect() as c:
        c.request("GET", "/exit")
        assert_problem(c.read_response(), 500)
    assert upstream.started == []
    time.sleep(0.1)
    assert gw.alive(), gw.stderr()[-3000:]
    with gw.connect() as c:
        c.request("GET", "/ok")
        assert c.read_response().status == 200


def test_unsafe_lifts_the_sandbox(proxy, upstream):
    src = ('local gh = require "gatehouse"\n'
           'return gh.route { match = { path = "/**" }, upstream = "up",\n'
           '  policy = function(req)\n'
           '    local f = io.open("/etc/hostname", "r")\n'
           '    return gh.respond(200, f and "opened" or "no")\n'
           '  end }\n')
    gw = proxy(route_files={ROUTE_FILE: src}, lua={"unsafe": True})
    with gw.connect() as c:
        c.request("GET", "/x")
        r = c.read_response()
    assert r.status == 200 and r.body == b"opened", r


# ---------------------------------------------------------------------------
# Load time: gatehouse -t


def run_check(tmp_path, route_src, extra_cfg=""):
    (tmp_path / "routes").mkdir(exist_ok=True)
    cfg = ('return {\n'
           '  listen = { "127.0.0.1:18080" },\n'
           '  workers = 1,\n'
           '  upstreams = { up = { targets = { "127.0.0.1:18081" } } },\n'
           + extra_cfg +
           '  routes = "routes/",\n'
           '}\n')
    (tmp_path / "gatehouse.lua").write_text(cfg)
    (tmp_path / "routes" / "10-api.lua").write_text(route_src)
    p = subprocess.run([GATEHOUSE_BIN, "-t", "-c", str(tmp_path / "gatehouse.lua")], capture_output=True,
                       timeout=20, stdin=subprocess.DEVNULL)
    return p.returncode, (p.stdout + p.stderr).decode(errors="replace")


def route_with_top(stmt):
    return ('local gh = require "gatehouse"\n'                       # 1
            + stmt + '\n'                                            # 2
            'return gh.route {\n'                                    # 3
            '  match = { path = "/api/**" }, upstream = "up",\n'     # 4
            '  policy = function(req, claims) end,\n'                # 5
            '  on_response = function(res, claims) end,\n'           # 6
            '}\n')


def test_check_policy_route_valid(tmp_path):
    rc, out = run_check(tmp_path, route_with_top("local x = 1"), '  lua = { budget = 0.1 },\n')
    assert rc == 0, out
    assert "configuration is valid" in out


TOP_LEVEL_REFUSED = [
    ('io.write("x")', True),
    ('local f = io.open("/etc/hostname")', True),
    ('os.execute("true")', True),
    ('os.exit(0)', True),
    ('local ffi = require "ffi"', False),
    ('local x = require("io").write', False),
    ('debug.getinfo(1)', True),
    ('local x = getfenv(0).io.write', True),
    ('dofile("@PROBE@")', False),
    ('loadfile("@PROBE@")()', False),
    ('assert(load(string.dump(function() end)))()', False),
    ('assert(package.loadlib("libc.so.6", "*"))', False),
]


@pytest.mark.parametrize("stmt,at_line", TOP_LEVEL_REFUSED)
def test_check_route_file_sandboxed(tmp_path, stmt, at_line):
    probe = tmp_path / "probe.lua"
    probe.write_text('return "probe-file-ran"\n')
    rc, out = run_check(tmp_path, route_with_top(stmt.replace("@PROBE@", str(probe))))
    assert rc == 1, f"exit {rc}: {out}"
    assert "configuration is valid" not in out
    assert "10-api.lua" in out, out
    if at_line:
        assert "10-api.lua:2" in out, out


def test_check_route_file_may_use_os_time(tmp_path):
    stmt = 'local t = os.time() + os.clock(); local d = os.date("%Y"); local p = os.getenv("PATH")'
    rc, out = run_check(tmp_path, route_with_top(stmt))
    assert rc == 0, out


@pytest.mark.parametrize("key", ["policy", "on_response"])
def test_check_policy_must_be_function(tmp_path, key):
    src = ('local gh = require "gatehouse"\n'
           'return gh.route {\n'
           '  match = { path = "/api/**" }, upstream = "up",\n'
           f'  {key} = "deny",\n'
           '}\n')
    rc, out = run_check(tmp_path, src)
    assert rc == 1, out
    assert "10-api.lua" in out and key in out, out


def test_check_unknown_lua_key_refused(tmp_path):
    rc, out = run_check(tmp_path, route_with_top("local x = 1"), '  lua = { bogus = true },\n')
    assert rc == 1, out
    assert "bogus" in out, out


# ---------------------------------------------------------------------------
# gatehouse test DIR

ORDERS = '''local gh = require "gatehouse"

return gh.route {
  name     = "orders",
  match    = { path = "/api/orders/**" },
  auth     = "keycloak",
  upstream = "orders",
  policy = function(req, claims)
    if req.method == "DELETE" and not claims:has_role("ADMIN") then
      return gh.deny(403, "ADMIN role required to delete orders")
    end
    if req.query.legacy then return gh.redirect("/v2" .. req.path, 308) end
    if req.query.boom then error("policy boom") end --@tboom
    req.headers["X-User-Id"] = claims.sub
    req:set_path("/orders")
    req:set_query({ page = "2" })
  end,
  on_response = function(res, claims)
    res.headers["Server"] = nil
    res.headers["X-Seen"] = res.status
  end,
}
'''

ORDERS_TEST = '''local t = require "gatehouse.test"
local orders = t.load("../orders.lua", "orders")

t.case("a USER may not delete", function()
  local req = t.request { method = "DELETE", path = "/api/orders/7" }
  local claims = t.claims { sub = "alice", realm_access = { roles = { "USER" } } }
  local out = t.run(orders, req, claims)
  t.eq(out.action, "deny")
  t.eq(out.status, 403)
end)

t.case("an ADMIN may, and the request is rewritten", function()
  local req = t.request { method = "DELETE", path = "/api/orders/7" }
  local out = t.run(orders, req, t.claims({ sub = "root", groups = { "ADMIN" } }, { roles = { "groups" } }))
  t.eq(out.action, "proxy")
  t.eq(req.headers["x-user-id"], "root")
  t.eq(req.upstream_path, "/orders")
  t.truthy(req.upstream_query)
end)

t.case("legacy redirect", function()
  local req = t.request { method = "GET", path = "/api/orders/7", query = "legacy=1" }
  local out = t.run(orders, req, t.claims { sub = "a" })
  t.eq(out.action, "redirect")
  t.eq(out.status, 308)
  t.eq(out.location, "/v2/api/orders/7")
end)

t.case("errors carry file:line", function()
  local req = t.request { method = "GET", path = "/api/orders/7", query = "boom=1" }
  local out = t.run(orders, req, t.claims { sub = "a" })
  t.eq(out.action, "error")
  t.truthy(out.error:find("orders.lua:@BOOMLINE@", 1, true), out.error)
end)

t.case("on_response", function()
  local res = t.respond(orders, { status = 200, headers = { Server = "nginx" } }, t.claims { sub = "a" })
  t.eq(res.headers["Server"], nil)
  t.eq(tostring(res.headers["X-Seen"]), "200")
end)

t.case("t.errors", function()
  t.errors(function() error("expected failure") end, "expected")
end)
'''

FAILING_TEST = '''local t = require "gatehouse.test"
local orders = t.load("../orders.lua")

t.case("passes", function() t.eq(1, 1) end)

t.case("wrong expectation", function()
  local out = t.run(orders, t.request { method = "DELETE", path = "/api/orders/7" },
                    t.claims { sub = "alice" })
  t.eq(out.status, 401) --@fail
end)
'''


ECHO = '''local gh = require "gatehouse"
return gh.route {
  match = { path = "/**" }, upstream = "up",
  policy = function(req, claims)
    req.headers["X-Seen"] = table.concat({ req.method, req.path, req.host, req.client_ip, req.id,
                                           tostring(req.headers["x-in"]), tostring(req.query.a) }, "|")
  end,
}
'''

ECHO_TEST = '''local t = require "gatehouse.test"
local echo = t.load("echo.lua")

t.case("every t.request field reaches the policy", function()
  local req = t.request { method = "PUT", path = "/a/b", query = "a=x%20y", host = "h.test",
                          client_ip = "::1", id = "rid-1", headers = { ["X-In"] = "v" } }
  local out = t.run(echo, req, nil)
  t.eq(out.action, "proxy")
  t.eq(req.headers["X-Seen"], "PUT|/a/b|h.test|::1|rid-1|v|x y")
end)
'''


def orders_test():
    return ORDERS_TEST.replace("@BOOMLINE@", str(line_of(ORDERS, "--@tboom")))


def run_test_cmd(d):
    p = subprocess.run([GATEHOUSE_BIN, "test", str(d)], capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    return p.returncode, (p.stdout + p.stderr).decode(errors="replace")


def test_gatehouse_test_passes(tmp_path):
    (tmp_path / "routes" / "sub").mkdir(parents=True)
    (tmp_path / "routes" / "orders.lua").write_text(ORDERS)
    (tmp_path / "routes" / "sub" / "orders_test.lua").write_text(orders_test())
    rc, out = run_test_cmd(tmp_path / "routes")
    assert rc == 0, out


def test_gatehouse_test_request_fields(tmp_path):
    (tmp_path / "routes").mkdir()
    (tmp_path / "routes" / "echo.lua").write_text(ECHO)
    (tmp_path / "routes" / "echo_test.lua").write_text(ECHO_TEST)
    rc, out = run_test_cmd(tmp_path / "routes")
    assert rc == 0, out


def test_gatehouse_test_reports_failing_case(tmp_path):
    (tmp_path / "routes" / "sub").mkdir(parents=True)
    (tmp_path / "routes" / "orders.lua").write_text(ORDERS)
    (tmp_path / "routes" / "sub" / "orders_test.lua").write_text(orders_test())
    (tmp_path / "routes" / "sub" / "broken_test.lua").write_text(FAILING_TEST)
    rc, out = run_test_cmd(tmp_path / "routes")
    assert rc == 1, out
    assert f"broken_test.lua:{line_of(FAILING_TEST, '--@fail')}" in out, out
    assert not re.search(r"orders_test\.lua:\d", out), out  # its cases all pass
