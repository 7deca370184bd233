"""A real redis-server for Gatehouse's end-to-end tests.

    srv = RedisServer(workdir).start()   # free 127.0.0.1 port, no persistence
    srv.url                               # "redis://127.0.0.1:PORT/0" for gatehouse.lua
    srv.client().zscore(...)              # a redis.Redis client (python3-redis)
    srv.kill() / srv.stop()               # SIGKILL / SIGTERM then bounded wait then SIGKILL
    srv.start()                           # again, on the SAME port (a restarted Redis)
    srv.pause() / srv.resume()            # SIGSTOP / SIGCONT: a Redis that accepts but never answers

The server runs in the foreground as our child, listens on 127.0.0.1 only,
keeps nothing on disk (`--save "" --appendonly no`, its dir is a temp
dir), and is only ever signalled through its own PID. Every wait is bounded.
A restart starts empty: that is what a Redis without persistence does.
"""

import os
import signal
import socket
import subprocess
import tempfile
import time

import redis

from conftest import free_port

REDIS_BIN = os.environ.get("REDIS_SERVER_BIN", "/usr/bin/redis-server")
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


class RedisServer:
    def __init__(self, workdir=None, port=None):
        self.dir = workdir or tempfile.mkdtemp(prefix="gh-redis-")
        os.makedirs(self.dir, exist_ok=True)
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.proc = None
        self.paused = False
        self.starts = 0
        self.log_path = os.path.join(self.dir, "redis.log")
        self._log = None
        self._clients = []

    # -- process ------------------------------------------------------------
    def start(self, timeout=START_TIMEOUT):
        """Starts redis-server on self.port and waits (bounded) until it
        answers PING. Used again after stop()/kill() it restarts on the same
        port."""
        assert not self.alive(), "redis-server already running"
        assert os.access(REDIS_BIN, os.X_OK), f"redis-server not found: {REDIS_BIN}"
        self.starts += 1
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [REDIS_BIN, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--daemonize", "no",
             "--logfile", "", "--databases", "4", "--protected-mode", "yes"],
            cwd=self.dir, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
        self.paused = False
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"redis-server exited with {self.proc.returncode} at start:\n{self.log()}")
            if self._ping():
                return self
            if time.monotonic() >= deadline:
                self.kill()
                raise AssertionError(f"redis-server did not answer PING on {self.port} within {timeout}s:\n"
                                     f"{self.log()}")
            time.sleep(0.02)

    def _ping(self):
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as s:
                s.settimeout(0.5)
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def restart(self, timeout=START_TIMEOUT):
        """stop() then start() on the same port."""
        self.stop()
        return self.start(timeout)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM (after SIGCONT if paused), bounded wait, then SIGKILL.
        Returns the exit code (None: had to be killed or was not running)."""
        self._close_clients()
        if not self.alive():
            return self.proc.returncode if self.proc else None
        self.resume()
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            rc = None
        self._close_log()
        return rc

    def kill(self):
        """SIGKILL, as a crashed Redis; waits for the child (bounded)."""
        self._close_clients()
        if self.alive():
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(STOP_TIMEOUT)
        self.paused = False
        self._close_log()

    def pause(self):
        """SIGSTOP: connections are still accepted by the kernel, nothing answers."""
        assert self.alive(), "redis-server not running"
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self):
        if self.paused and self.alive():
            os.kill(self.proc.pid, signal.SIGCONT)
        self.paused = False

    def _close_log(self):
        if self._log:
            self._log.close()
            self._log = None

    # -- clients ------------------------------------------------------------
    @property
    def addr(self):
        return f"{self.host}:{self.port}"

    @property
    def url(self):
        return f"redis://{self.host}:{self.port}/0"

    def client(self, db=0):
        """A redis.Redis client (str replies), every call bounded by 2 s."""
        c = redis.Redis(host=self.host, port=self.port, db=db, socket_timeout=2.0,
                        socket_connect_timeout=2.0, decode_responses=True)
        self._clients.append(c)
        return c

    def _close_clients(self):
        for c in self._clients:
            try:
                c.close()
            except Exception:  # noqa: BLE001 - closing a client of a dead server
                pass
        self._clients = []

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")[-4000:]
        except OSError:
            return ""


def main():
    """Stand-alone smoke check: start, PING, restart on the same port, pause, stop."""
    srv = RedisServer().start()
    try:
        c = srv.client()
        assert c.ping()
        c.set("k", "v")
        port, pid = srv.port, srv.pid
        srv.kill()
        srv.start()
        assert srv.port == port and srv.pid != pid
        assert srv.client().get("k") is None  # no persistence
        srv.pause()
        t0 = time.monotonic()
        try:
            redis.Redis(host=srv.host, port=srv.port, socket_timeout=0.2).ping()
            raise AssertionError("a paused redis answered")
        except redis.exceptions.TimeoutError:
            pass
        assert time.monotonic() - t0 < 1.0
        srv.resume()
        assert srv.client().ping()
        print(f"ok: redis-server on {srv.addr}, restarted once")
    finally:
        rc = srv.stop()
    assert rc == 0, rc


if __name__ == "__main__":
    main()
