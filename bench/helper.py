#!/usr/bin/python3
"""Helpers for bench/run (stdlib only).

  helper.py freeports N                 print N distinct free 127.0.0.1 TCP ports
  helper.py waitport PORT SECS          wait until 127.0.0.1:PORT accepts (exit 1 on timeout)
  helper.py get PORT [PATH]             one HTTP/1.1 GET; print "STATUS<TAB>BODY-repr"
  helper.py tree PID                    PID and all its descendants
  helper.py rss PID                     "rss_kib hwm_kib nprocs" summed over PID + descendants
  helper.py idle PORT N PID             RSS idle, open N keep-alive conns (one GET each),
                                        RSS while holding them; prints key=value lines
  helper.py wrk FILE                    parse wrk --latency output: "rps p50_ms p99_ms errors"
  helper.py summary RESULTS MEM META    print per-target medians + README block
"""
import os
import socket
import statistics
import sys
import time


# ---------------------------------------------------------------- ports ---

def freeports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    print(" ".join(map(str, ports)))


def waitport(port, secs):
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return 0
        except OSError:
            time.sleep(0.05)
    return 1


# ----------------------------------------------------------------- http ---

REQ = b"GET %s HTTP/1.1\r\nHost: bench.local\r\nUser-Agent: gh-bench\r\nConnection: keep-alive\r\n\r\n"


def read_response(sock):
    """Read one HTTP/1.1 response (Content-Length or chunked). Return (status, body)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before response head")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(b":")
        hdrs[k.strip().lower()] = v.strip()
    if b"content-length" in hdrs:
        need = int(hdrs[b"content-length"])
        while len(rest) < need:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed mid-body")
            rest += chunk
        return status, rest[:need]
    if hdrs.get(b"transfer-encoding", b"").lower().endswith(b"chunked"):
        while not rest.endswith(b"0\r\n\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed mid-chunked-body")
            rest += chunk
        body, data = b"", rest
        while True:
            size_line, data = data.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            body += data[:size]
            data = data[size + 2:]
        return status, body
    return status, rest  # no framing: not expected here


def get(port, path="/"):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(REQ % path.encode())
        status, body = read_response(s)
    finally:
        s.close()
    print("%d\t%r" % (status, body))
    return 0 if status == 200 else 1


# ------------------------------------------------------------------ rss ---

def _children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                data = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ...   -- comm may contain spaces/parens
        after = data.rsplit(")", 1)[1].split()
        kids.setdefault(int(after[1]), []).append(int(d))
    return kids


def tree(pid):
    kids = _children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def rss(pid):
    """(VmRSS kiB, VmHWM kiB, nprocs) summed over pid and all descendants."""
    tot_rss = tot_hwm = n = 0
    for p in tree(pid):
        try:
            with open("/proc/%d/status" % p) as f:
                st = f.read()
        except OSError:
            continue
        vals = {}
        for ln in st.splitlines():
            k, _, v = ln.partition(":")
            if k in ("VmRSS", "VmHWM"):
                vals[k] = int(v.split()[0])
        if "VmRSS" in vals:  # kernel threads / zombies have none
            tot_rss += vals["VmRSS"]
            tot_hwm += vals.get("VmHWM", vals["VmRSS"])
            n += 1
    return tot_rss, tot_hwm, n


def idle(port, n, pid, batch=250, settle=1.5):
    r0, h0, np0 = rss(pid)
    socks, bad, t0 = [], 0, time.monotonic()
    try:
        for start in range(0, n, batch):
            cur = []
            for _ in range(min(batch, n - start)):
                s = socket.create_connection(("127.0.0.1", port), timeout=10)
                s.sendall(REQ % b"/")
                cur.append(s)
            for s in cur:
                try:
                    status, _ = read_response(s)
                    if status != 200:
                        bad += 1
                except (OSError, ValueError):
                    bad += 1
            socks.extend(cur)
        opened = time.monotonic() - t0
        time.sleep(settle)
        # a few samples; take the largest (RSS settles quickly on loopback)
        best = (0, 0, 0)
        for _ in range(3):
            best = max(best, rss(pid))
            time.sleep(0.2)
        # make sure the server still holds them: peek for unexpected closes
        closed = 0
        for s in socks:
            s.setblocking(False)
            try:
                if s.recv(1, socket.MSG_PEEK) == b"":
                    closed += 1
            except BlockingIOError:
                pass
            except OSError:
                closed += 1
    finally:
        for s in socks:
            s.close()
    r1, h1, np1 = best
    print("rss_idle_kib=%d" % r0)
    print("hwm_idle_kib=%d" % h0)
    print("rss_conns_kib=%d" % r1)
    print("hwm_conns_kib=%d" % h1)
    print("nprocs=%d" % np1)
    print("conns=%d" % len(socks))
    print("bad_responses=%d" % bad)
    print("closed_by_server=%d" % closed)
    print("open_secs=%.2f" % opened)
    print("bytes_per_conn=%d" % round((r1 - r0) * 1024 / max(1, len(socks))))
    return 0 if (bad == 0 and closed == 0 and len(socks) == n) else 3


# ------------------------------------------------------------------ wrk ---

def _to_ms(tok):
    for suf, mul in (("us", 0.001), ("ms", 1.0), ("s", 1000.0), ("m", 60000.0)):
        if tok.endswith(suf):
            return float(tok[: -len(suf)]) * mul
    return float(tok)


def parse_wrk(path):
    rps = p50 = p99 = None
    errors = 0
    with open(path) as f:
        for ln in f:
            t = ln.split()
            if not t:
                continue
            if t[0] == "Requests/sec:":
                rps = float(t[1])
            elif t[0] == "50%" and len(t) == 2:
                p50 = _to_ms(t[1])
            elif t[0] == "99%" and len(t) == 2:
                p99 = _to_ms(t[1])
            elif ln.strip().startswith("Non-2xx or 3xx responses:"):
                errors += int(t[-1])
            elif t[0] == "Socket" and t[1] == "errors:":
                # Socket errors: connect 0, read 0, write 0, timeout 0
                nums = [int(x.strip(",")) for x in t[2:] if x.strip(",").isdigit()]
                errors += sum(nums)
    if rps is None or p50 is None or p99 is None:
        return 1
    print("%.2f %.3f %.3f %d" % (rps, p50, p99, errors))
    return 0


# -------------------------------------------------------------- summary ---

def _kv(path):
    out = {}
    with open(path) as f:
        for ln in f:
            ln = ln.rstrip("\n")
            if "=" in ln:
                k, _, v = ln.partition("=")
                out[k] = v
    return out


def _ratio(a, b):
    return "%.2f" % (a / b) if b else "n/a"


def _mib(kib):
    return "%.1f MiB" % (kib / 1024.0)


def summary(results_path, mem_dir, meta_path):
    meta = _kv(meta_path)
    rows = {}
    with open(results_path) as f:
        for ln in f:
            name, rnd, rps, p50, p99, err = ln.split()
            rows.setdefault(name, []).append((float(rps), float(p50), float(p99), int(err)))
    targets = [t for t in ("gatehouse", "nginx") if t in rows]
    med = {}
    for t in targets:
        r = rows[t]
        med[t] = (statistics.median(x[0] for x in r), statistics.median(x[1] for x in r),
                  statistics.median(x[2] for x in r), sum(x[3] for x in r))
    mem = {}
    for t in targets:
        p = os.path.join(mem_dir, t + ".mem")
        if os.path.exists(p):
            mem[t] = _kv(p)

    cols = targets + (["gh/nginx"] if len(targets) == 2 else [])

    def line(label, vals):
        return "| %-32s |" % label + "".join(" %14s |" % v for v in vals)

    def ratio(vals):
        return [_ratio(vals[0], vals[1])] if len(vals) == 2 and None not in vals else []

    out = []
    out.append("Gatehouse vs nginx (reverse proxy to the same nginx upstream, loopback)")
    out.append("%s; %s CPUs (%s); kernel %s" % (meta.get("date", ""), meta.get("nproc", "?"),
                                                  meta.get("cpu", "?"), meta.get("kernel", "?")))
    out.append("gatehouse: %s; nginx: %s; proxy workers: %s each; upstream: nginx, %s workers"
               % (meta.get("gh_version", "?"), meta.get("nginx_version", "?"),
                  meta.get("workers", "?"), meta.get("upstream_workers", "?")))
    out.append("load: %s; %s interleaved rounds, median shown; access logs off%s"
               % (meta.get("wrk_cmd", "?"), meta.get("rounds", "?"),
                  "; nginx also sets X-Forwarded-*/X-Request-Id" if meta.get("nginx_xfwd") == "1"
                  else ""))
    if meta.get("idle_conns", "0") != "0":
        out.append("memory: VmRSS summed over all processes; %s idle keep-alive client "
                   "connections (one GET each, then held)" % meta.get("idle_conns"))
    else:
        out.append("memory: VmRSS summed over all processes (idle-connection test skipped)")
    out.append("")
    out.append(line("", cols))
    out.append("|" + "-" * 34 + "|" + "".join("-" * 15 + ":|" for _ in cols))
    v = [med[t][0] for t in targets]
    out.append(line("requests/s (median)", ["%.0f" % x for x in v] + ratio(v)))
    for i, lab in ((1, "latency p50 (median)"), (2, "latency p99 (median)")):
        v = [med[t][i] for t in targets]
        out.append(line(lab, ["%.3f ms" % x for x in v] + ratio(v)))
    out.append(line("errors (all rounds)", ["%d" % med[t][3] for t in targets]
                    + ([""] if len(targets) == 2 else [])))
    if mem:
        for k, lab, fmt in (("rss_idle_kib", "RSS idle", _mib),
                            ("rss_conns_kib", "RSS with %s idle conns" % meta.get("idle_conns", "?"), _mib),
                            ("hwm_conns_kib", "  peak RSS (VmHWM) then", _mib),
                            ("bytes_per_conn", "bytes per idle connection", lambda x: "%d B" % x),
                            ("rss_after_kib", "RSS after load rounds", _mib),
                            ("hwm_after_kib", "  peak RSS (VmHWM) then", _mib)):
            v = [int(mem[t][k]) if t in mem and k in mem[t] else None for t in targets]
            if all(x is None for x in v):
                continue
            out.append(line(lab, [fmt(x) if x is not None else "-" for x in v] + ratio(v)))
    print("\n".join(out))
    return 0


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, args = argv[1], argv[2:]
    if cmd == "freeports":
        freeports(int(args[0]))
        return 0
    if cmd == "waitport":
        return waitport(int(args[0]), float(args[1]))
    if cmd == "get":
        return get(int(args[0]), args[1] if len(args) > 1 else "/")
    if cmd == "tree":
        print(" ".join(map(str, tree(int(args[0])))))
        return 0
    if cmd == "rss":
        print("%d %d %d" % rss(int(args[0])))
        return 0
    if cmd == "idle":
        return idle(int(args[0]), int(args[1]), int(args[2]))
    if cmd == "wrk":
        return parse_wrk(args[0])
    if cmd == "summary":
        return summary(args[0], args[1], args[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
