"""API keys: with keys, every operation but /health needs `Authorization: Bearer KEY`; 401 with the
error model otherwise; the page, the document and OPTIONS stay reachable. OPTIONS answers what
each path allows, and the page never stands in for an API path. CORS is off unless origins are
listed. The `serve` command refuses a non-loopback address without a key, and runs with a key file
(the real command, in a subprocess)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from api.auth import ApiKeyError, keys_from, load_key_file, matches
from cli.serve import is_loopback

from .conftest import API_KEY

REPO = Path(__file__).resolve().parents[2]
BEARER = {"Authorization": f"Bearer {API_KEY}"}


def test_every_operation_but_health_needs_the_key(keyed) -> None:
    with httpx.Client(base_url=keyed.url, timeout=60) as c:
        calls = [("GET", "/collection", None), ("GET", "/clips/1", None), ("GET", "/clips/1/audio", None),
                 ("POST", "/search/text", {"query": "a calm voice"}), ("POST", "/search/audio", {"clip_ids": [1]}),
                 ("POST", "/classify", {"clip_ids": [1], "labels": ["calm"]}),
                 ("POST", "/similarity", {"a": 1, "b": 2}), ("POST", "/export", {"ids": [1]})]
        for method, path, body in calls:
            for headers in ({}, {"Authorization": "Bearer not-the-key-at-all"}, {"Authorization": API_KEY},
                            {"Authorization": f"Basic {API_KEY}"}):
                r = c.request(method, path, json=body, headers=headers)
                assert r.status_code == 401, (method, path, headers, r.text)
                assert r.json()["error"] == "unauthorized" and r.json()["status"] == 401
                assert r.headers["www-authenticate"].startswith("Bearer")
            ok = c.request(method, path, json=body, headers=BEARER)
            assert ok.status_code == 200, (method, path, ok.text)
        assert c.request("POST", "/search/text", json={}, headers={"authorization": f"bearer {API_KEY}"}).status_code == 422
        assert c.get("/health").status_code == 200  # no key
        assert c.get("/openapi.json").status_code == 200 and c.get("/docs").status_code == 200
        assert c.get("/nowhere").status_code == 401  # nothing about the server without a key
        assert c.get("/nowhere", headers=BEARER).status_code == 404


def test_the_page_is_open_and_never_shadows_the_api(restricted) -> None:
    server, web = restricted  # serves a web/ folder with only index.html
    with httpx.Client(base_url=server.url, timeout=60) as c:
        assert c.get("/").status_code == 200 and "<title>clsp-search" in c.get("/").text
        assert c.get("/index.html").status_code == 200
        for path, allowed in (("/export", "OPTIONS, POST"), ("/search/text", "OPTIONS, POST"),
                              ("/clips/3/audio", "GET, OPTIONS"), ("/health", "GET, OPTIONS"),
                              ("/", "GET, HEAD, OPTIONS")):
            r = c.options(path)
            assert r.status_code == 204 and r.headers["allow"] == allowed, (path, r.status_code, r.headers)
        r = c.get("/export")
        assert r.status_code == 405 and r.headers["allow"] == "POST" and r.json()["error"] == "method_not_allowed"
        assert c.options("/nowhere").status_code == 404
        assert c.get("/js/main.js").status_code == 404  # this web/ has no js folder: a plain 404, no page
        assert "access-control-allow-origin" not in c.get("/health", headers={"Origin": "https://elsewhere"}).headers


def test_keys_compare_whole_and_files_are_checked(tmp_path: Path) -> None:
    keys = [API_KEY.encode()]
    assert matches(API_KEY, keys) and not matches(API_KEY[:-1], keys) and not matches(API_KEY + "x", keys)
    assert not matches("", keys) and matches("second-key-abcdefghij", [*keys, b"second-key-abcdefghij"])
    good = tmp_path / "keys"
    good.write_text(f"# rotated monthly\n{API_KEY}\n\nsecond-key-abcdefghij\n")
    assert load_key_file(good) == (API_KEY, "second-key-abcdefghij")
    for text, why in (("", "holds no key"), ("short\n", "at least 16"), ("has a space in it here\n", "letters")):
        (tmp_path / "bad").write_text(text)
        with pytest.raises(ApiKeyError, match=why):
            load_key_file(tmp_path / "bad")
    with pytest.raises(ApiKeyError, match="cannot read"):
        load_key_file(tmp_path / "missing")
    env = {"CLSP_SEARCH_API_KEY": "from-the-environment-123", "CLSP_SEARCH_API_KEY_FILE": str(good)}
    assert keys_from(None, env) == (API_KEY, "second-key-abcdefghij", "from-the-environment-123")
    assert keys_from(None, {}) == ()
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.5.0.1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and not is_loopback("myhost")


def _serve(args: list[str], env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", "serve", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "COLUMNS": "200", **(env or {})})


def test_serve_refuses_an_open_address_without_a_key(collection_dir: Path, tmp_path: Path) -> None:
    done = _serve([str(collection_dir), "--host", "0.0.0.0"], env={"CLSP_SEARCH_API_KEY": ""})
    assert done.returncode == 2 and "--api-key-file" in done.stderr and "--no-auth" in done.stderr, done.stderr
    (tmp_path / "k").write_text(API_KEY)
    done = _serve([str(collection_dir), "--api-key-file", str(tmp_path / "k"), "--no-auth"])
    assert done.returncode == 2 and "contradict" in done.stderr, done.stderr
    (tmp_path / "short").write_text("abc")
    done = _serve([str(collection_dir), "--api-key-file", str(tmp_path / "short")])
    assert done.returncode == 2 and "at least 16" in done.stderr, done.stderr


def test_serve_with_a_key_file(collection_dir: Path, tmp_path: Path) -> None:
    """The command as a user runs it: `clsp-search serve COL --api-key-file K`."""
    key_file = tmp_path / "api-keys"
    key_file.write_text(API_KEY + "\n")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "cli", "serve", str(collection_dir), "--port", str(port),
                             "--api-key-file", str(key_file)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "CLSP_SEARCH_API_KEY": ""})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.time() < deadline, proc.stdout.read() if proc.poll() is not None else "slow"
            time.sleep(0.25)
        body = {"query": "a calm older man", "top_k": 3}
        assert httpx.post(f"{url}/search/text", json=body, timeout=60).status_code == 401
        assert httpx.post(f"{url}/search/text", json=body, headers=BEARER, timeout=60).status_code == 200
        assert httpx.get(f"{url}/health", timeout=10).json()["status"] == "ok"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
