"""RELIABILITY.md, last row: requests from another origin, and GRADIO_SERVER_NAME=0.0.0.0 in the
environment. The real app is launched once (`python app.py --port P ...`) with that environment and
probed over HTTP the way a hostile web page, a DNS-rebinding page and a LAN neighbour would.

Gradio 6.31 alone (strict_cors=True, its default) withholds Access-Control-Allow-Origin from foreign
origins but still runs their requests; app.SameOriginGuard refuses them with 403 (and, while the app
listens on loopback only, any Host header that is not localhost). Also checked here at no extra cost:
a checkpoint that would run code, dropped into checkpoints/, is refused at start-up and reported.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from _reliability import PROJECT, encode, make_checkpoint, picture, write

pytestmark = pytest.mark.e2e

EVIL = "http://evil.example"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    import torch

    tmp = tmp_path_factory.mktemp("server")
    ckpts = tmp / "checkpoints"
    make_checkpoint(ckpts / "good.pt", ("cat", "fish"), seed=1)
    marker = tmp / "PWNED"
    torch.save({"format": "fishcat-checkpoint", "x": Evil(str(marker))}, ckpts / "zz-dropped.pt")
    (ckpts / ".active").write_text("zz-dropped.pt")  # the remembered model was replaced by the hostile file
    port, env_port = free_port(), free_port()
    env = {
        **os.environ,
        "GRADIO_SERVER_NAME": "0.0.0.0",
        "GRADIO_SERVER_PORT": str(env_port),
        "GRADIO_TEMP_DIR": str(tmp / "gradio-cache"),
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    log = (tmp / "server.log").open("w+")
    proc = subprocess.Popen(
        [sys.executable, "app.py", "--port", str(port), "--checkpoints", str(ckpts), "--data-dir", str(tmp / "data"), "--device", "cpu"],
        cwd=PROJECT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    try:
        while True:
            if proc.poll() is not None:
                log.seek(0)
                pytest.fail(f"the app exited with {proc.returncode}:\n{log.read()}")
            try:
                if httpx.get(base + "/gradio_api/info", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the app did not start in 240 s")
            time.sleep(0.5)
        yield {"base": base, "port": port, "env_port": env_port, "tmp": tmp, "marker": marker, "log": log, "proc": proc}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def listening(port: int) -> list[str]:
    """Local addresses listening on `port`, from /proc/net/tcp{,6} (hex as the kernel writes them)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            addr, hexport = local.rsplit(":", 1)
            if state == "0A" and int(hexport, 16) == port:
                found.append(addr)
    return found


def other_addresses() -> list[str]:
    try:
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=10).stdout.split()
    except (OSError, subprocess.SubprocessError):
        out = []
    return [a for a in out if not a.startswith("127.") and a != "::1"]


# ---------------------------------------------------------------- bind address


def test_listens_on_loopback_only_despite_gradio_server_name(server) -> None:
    if not Path("/proc/net/tcp").exists():
        pytest.skip("needs Linux /proc/net/tcp")
    assert listening(server["port"]) == ["0100007F"]  # 127.0.0.1 and nothing else, no IPv6 any-address
    assert listening(server["env_port"]) == []  # GRADIO_SERVER_PORT was ignored too
    log = server["log"]
    log.seek(0)
    assert f"Running on local URL:  http://127.0.0.1:{server['port']}" in log.read()


def test_other_interfaces_are_refused(server) -> None:
    addresses = other_addresses()
    if not addresses:
        pytest.skip("this machine has no non-loopback address")
    for addr in addresses:
        family = socket.AF_INET6 if ":" in addr else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            with pytest.raises(OSError):  # ConnectionRefusedError: nothing listens there
                s.connect((addr, server["port"]))


# ---------------------------------------------------------------- other origins


JOIN = {"data": [], "fn_index": None, "session_hash": "reliability", "event_data": None, "trigger_id": None}


@pytest.fixture(scope="module", autouse=True)
def join_stop(server) -> None:
    """Queue payloads call the harmless `stop` endpoint (no run is going: it only says so)."""
    config = httpx.get(server["base"] + "/config").json()
    JOIN["fn_index"] = next(d["id"] for d in config["dependencies"] if d.get("api_name") == "stop")


def test_preflight_does_not_grant_another_origin(server) -> None:
    base = server["base"]
    evil = httpx.options(
        base + "/gradio_api/queue/join",
        headers={"Origin": EVIL, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"},
    )
    assert "access-control-allow-origin" not in evil.headers
    own = httpx.options(base + "/gradio_api/queue/join", headers={"Origin": base, "Access-Control-Request-Method": "POST"})
    assert own.headers.get("access-control-allow-origin") == base


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("POST", "/gradio_api/queue/join", {"json": JOIN}),
        ("POST", "/gradio_api/queue/join", {"content": json.dumps(JOIN), "headers": {"Content-Type": "text/plain"}}),
        ("POST", "/gradio_api/upload", {"files": {"files": ("x.png", b"\x89PNG fake", "image/png")}}),
        ("POST", "/gradio_api/call/predict", {"json": {"data": [None]}}),
        ("POST", "/gradio_api/call/stop", {"json": {"data": []}}),
        ("GET", "/gradio_api/info", {}),
    ],
    ids=["queue-join-json", "queue-join-text-plain", "upload-multipart", "call-predict", "call-stop", "info"],
)
def test_requests_from_another_origin_are_refused(server, method: str, path: str, kwargs: dict) -> None:
    cache = server["tmp"] / "gradio-cache"
    before = sorted(cache.rglob("*")) if cache.exists() else []
    headers = {**kwargs.pop("headers", {}), "Origin": EVIL}
    r = httpx.request(method, server["base"] + path, headers=headers, timeout=30, **kwargs)
    assert r.status_code == 403, r.text
    assert r.headers.get("access-control-allow-origin") != EVIL
    assert "origin 'http://evil.example' is not this app" in r.text
    after = sorted(cache.rglob("*")) if cache.exists() else []
    assert after == before  # nothing was stored


@pytest.mark.parametrize("origin", ["null", "http://127.0.0.1.evil.example", "http://localhost.evil.example:1234"])
def test_lookalike_and_null_origins_are_refused(server, origin: str) -> None:
    r = httpx.post(server["base"] + "/gradio_api/queue/join", json=JOIN, headers={"Origin": origin})
    assert r.status_code == 403


def test_dns_rebinding_host_is_refused(server) -> None:
    """A page on evil.example whose name now resolves to 127.0.0.1 is same-origin to the browser,
    so no CORS rule applies; the Host header gives it away."""
    port = server["port"]
    for host in (f"evil.example:{port}", f"192.0.2.1:{port}"):
        r = httpx.post(server["base"] + "/gradio_api/queue/join", json=JOIN, headers={"Host": host, "Origin": f"http://{host}"})
        assert r.status_code == 403, host
        r = httpx.get(server["base"] + "/", headers={"Host": host})
        assert r.status_code == 403, host


def test_own_page_and_scripts_still_work(server, tmp_path: Path) -> None:
    base = server["base"]
    page = httpx.get(base + "/")
    assert page.status_code == 200 and "<html" in page.text.lower()
    r = httpx.post(base + "/gradio_api/queue/join", json=JOIN, headers={"Origin": base})
    assert r.status_code == 200 and "event_id" in r.json()
    local = f"localhost:{server['port']}"  # the same page opened as http://localhost:PORT
    r = httpx.post(base + "/gradio_api/queue/join", json=JOIN, headers={"Host": local, "Origin": f"http://{local}"})
    assert r.status_code == 200
    from gradio_client import Client, handle_file

    image = write(tmp_path / "probe.png", encode(picture(), "PNG"))
    client = Client(base, verbose=False)
    result = client.predict(handle_file(str(image)), api_name="/predict")
    assert set(result) == {"cat", "fish"}


def test_dropped_malicious_checkpoint_refused_at_startup_and_never_run(server) -> None:
    log = server["log"]
    log.seek(0)
    startup = log.read().split("* Running on local URL")[0]
    assert startup.startswith("warning: zz-dropped.pt: not a usable fishcat checkpoint: refused: it holds Python objects")
    assert "Traceback" not in startup
    assert not server["marker"].exists()
    r = httpx.get(server["base"] + "/gradio_api/info")
    assert r.status_code == 200 and "/predict" in r.json()["named_endpoints"]
