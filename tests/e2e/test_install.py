"""`cmake --install` of the build that made $GATEHOUSE_BIN, into a DESTDIR.

Builds nothing: installs the existing build tree under a temporary DESTDIR
(prefix /usr/local), checks the layout and the systemd unit, and runs the
installed binary, which must find the installed Lua library beside itself
with no GATEHOUSE_LUA_DIR. Nothing is written outside the temporary
directory except the install_manifest.txt that cmake --install always
leaves in the build tree.
"""

import os
import re
import shutil
import subprocess

import pytest

from conftest import GATEHOUSE_BIN

BUILD_DIR = os.path.dirname(os.path.abspath(GATEHOUSE_BIN))
PREFIX = "/usr/local"
CONF = "/etc/gatehouse/gatehouse.lua"
TIMEOUT = 60


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("GATEHOUSE_LUA_DIR", "DESTDIR", "NOTIFY_SOCKET")}
    env.update(extra)
    return env


def cmake_install(destdir):
    cmake = shutil.which("cmake")
    assert cmake, "cmake not found"
    assert os.path.exists(os.path.join(BUILD_DIR, "cmake_install.cmake")), f"{BUILD_DIR} is not a CMake build tree"
    p = subprocess.run([cmake, "--install", BUILD_DIR, "--prefix", PREFIX], env=clean_env(DESTDIR=str(destdir)),
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert p.returncode == 0, f"cmake --install failed:\n{p.stdout}\n{p.stderr}"
    return p.stdout


def under(destdir, path):
    return os.path.join(str(destdir), path.lstrip("/"))


def run_installed(destdir, *args):
    return subprocess.run([under(destdir, PREFIX + "/bin/gatehouse"), *args], env=clean_env(),
                          cwd=str(destdir), capture_output=True, text=True, timeout=TIMEOUT)


@pytest.fixture
def dest(tmp_path):
    d = tmp_path / "dest"
    d.mkdir()
    cmake_install(d)
    return d


def test_layout(dest):
    bindir = under(dest, PREFIX + "/bin")
    assert os.listdir(bindir) == ["gatehouse"], "only the gateway is installed, no bench or test binaries"
    assert os.access(os.path.join(bindir, "gatehouse"), os.X_OK)
    lua = under(dest, PREFIX + "/share/gatehouse/lua/gatehouse")
    for name in ("init.lua", "runtime.lua", "sandbox.lua", "test.lua"):
        assert os.path.isfile(os.path.join(lua, name)), name
    etc = under(dest, "/etc/gatehouse")
    assert os.path.isfile(os.path.join(etc, "gatehouse.lua"))
    assert os.path.isfile(os.path.join(etc, "routes", "demo.lua"))
    assert os.path.isfile(os.path.join(etc, "keys", "dev-rs256.pub.pem"))
    assert not os.path.exists(os.path.join(etc, "keys", "dev-rs256.key.pem")), "the private key stays in the repository"
    with open(os.path.join(etc, "gatehouse.lua")) as f:
        assert 'routes = "routes/"' in f.read()


def test_systemd_unit(dest):
    path = under(dest, PREFIX + "/lib/systemd/system/gatehouse.service")
    with open(path) as f:
        text = f.read()
    assert not re.search(r"@[A-Z_]+@", text), "an unconfigured @VAR@ is left"
    keys = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", "[")):
            k, _, v = line.partition("=")
            keys.setdefault(k, []).append(v)
    assert keys["Type"] == ["notify"]
    assert keys["ExecStartPre"] == [f"{PREFIX}/bin/gatehouse -t -c {CONF}"]
    assert keys["ExecStart"] == [f"{PREFIX}/bin/gatehouse -c {CONF}"]
    assert keys["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert keys["KillSignal"] == ["SIGTERM"]
    assert int(keys["TimeoutStopSec"][0]) > 30, "longer than the default drain_timeout"
    assert keys["Restart"] == ["on-failure"]
    assert "MemoryDenyWriteExecute" not in keys, "LuaJIT needs writable code pages"


def test_installed_binary_checks_the_example_with_its_own_library(dest):
    conf = under(dest, CONF)
    p = run_installed(dest, "-t", "-c", conf)
    assert p.returncode == 0, p.stderr
    assert "configuration is valid" in p.stdout + p.stderr
    # Proof that the installed library was the one read, not the source tree's:
    # break the installed copy and the same check fails, naming it.
    sandbox = under(dest, PREFIX + "/share/gatehouse/lua/gatehouse/sandbox.lua")
    with open(sandbox, "a") as f:
        f.write('\nerror("installed copy read")\n')
    p = run_installed(dest, "-t", "-c", conf)
    assert p.returncode == 1, p.stderr
    assert "installed copy read" in p.stderr, p.stderr
    assert "/share/gatehouse/lua/gatehouse/sandbox.lua" in p.stderr, p.stderr


def test_installed_route_tests_pass(dest):
    p = run_installed(dest, "test", under(dest, "/etc/gatehouse/routes"))
    assert p.returncode == 0, p.stdout + p.stderr


def test_reinstall_keeps_an_existing_config(dest):
    conf = under(dest, CONF)
    mine = "-- mine\nreturn { listen = { \"127.0.0.1:1\" } }\n"
    with open(conf, "w") as f:
        f.write(mine)
    os.remove(under(dest, "/etc/gatehouse/routes/demo.lua"))
    out = cmake_install(dest)
    assert "Keeping:" in out, out
    with open(conf) as f:
        assert f.read() == mine
    assert not os.path.exists(under(dest, "/etc/gatehouse/routes/demo.lua")), "the example was not reinstalled piecemeal"
    assert os.access(under(dest, PREFIX + "/bin/gatehouse"), os.X_OK)
