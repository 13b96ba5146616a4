"""BAD-INPUTS rows 1-11 and 19-21 against the running KServe predictor.

Every bad input gets a 4xx with a stable ``code``, and the server answers a valid request
right after each one.
"""

from __future__ import annotations

import base64
import socket
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
from image_fixtures import BAD_CODES, GOOD_KEYS
from serving_helpers import CAT_CLASSES, Server

STATUS = {
    "empty_file": 400,
    "corrupt_image": 400,
    "unsupported_media_type": 415,
    "image_too_large": 413,
}


def assert_still_serving(server: Server, chelsea_jpeg: bytes) -> None:
    r = server.predict_bytes(chelsea_jpeg)
    assert r.status_code == 200, r.text
    assert r.json()["predictions"][0]["labels"][0] in CAT_CLASSES


@pytest.mark.parametrize("key", sorted(BAD_CODES))
def test_bad_image_rows_1_to_4(
    default_server: Server, bad_image_files: dict[str, Path], chelsea_jpeg: bytes, key: str
) -> None:
    r = default_server.predict_bytes(bad_image_files[key].read_bytes())
    body = r.json()
    assert r.status_code == STATUS[BAD_CODES[key]], body
    assert body["code"] == BAD_CODES[key] and body["message"]
    assert_still_serving(default_server, chelsea_jpeg)


def test_good_but_tricky_images_rows_5_to_9(
    default_server: Server, bad_image_files: dict[str, Path], chelsea_jpeg: bytes
) -> None:
    instances = [
        {"image": {"b64": base64.b64encode(bad_image_files[k].read_bytes()).decode()}}
        for k in GOOD_KEYS
    ]
    for start in range(0, len(instances), 8):  # the server accepts 8 images per request
        r = default_server.v1(instances[start : start + 8])
        assert r.status_code == 200, r.text
        for pred in r.json()["predictions"]:
            assert "error" not in pred and len(pred["labels"]) == 5
    assert "<script" not in r.text  # row 9: hostile metadata is never echoed
    assert_still_serving(default_server, chelsea_jpeg)


def test_names_are_ignored_row_10(default_server: Server, chelsea_jpeg: bytes) -> None:
    b64 = base64.b64encode(chelsea_jpeg).decode()
    r = default_server.v1([{"image": {"b64": b64}, "name": "../../etc/passwd\x00.jpg"}])
    assert r.status_code == 200 and "passwd" not in r.text


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"instances": "not a list"}, "bad_request"),
        ({"instances": []}, "bad_request"),
        ({"inputs": []}, "bad_request"),
        ({"instances": [{"image": {"b64": "!!!not base64!!!"}}]}, "invalid_base64"),
        ({"instances": [{"image": {"url": "http://169.254.169.254/"}}]}, "bad_request"),
        ({"instances": [{"image": {"b64": "aGk="}}] * 9}, "too_many_images"),
        ({"instances": [{"image": {"b64": "aGk="}}], "parameters": {"top_k": 0}}, "bad_request"),
    ],
)
def test_malformed_requests_row_11(
    default_server: Server, chelsea_jpeg: bytes, body: dict, code: str
) -> None:
    r = httpx.post(f"{default_server.url}/v1/models/imgrec:predict", json=body, timeout=30)
    assert r.status_code == 400, r.text
    assert r.json()["code"] == code
    assert_still_serving(default_server, chelsea_jpeg)


def test_invalid_json_gets_a_code(default_server: Server, chelsea_jpeg: bytes) -> None:
    r = httpx.post(
        f"{default_server.url}/v1/models/imgrec:predict",
        content=b"{nope",
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert r.status_code == 400 and r.json()["code"] == "bad_request"
    assert_still_serving(default_server, chelsea_jpeg)


def _raw_request(
    server: Server, head: bytes, body_chunks: list[bytes], pause_s: float = 0.0
) -> tuple[bytes, float]:
    """Send a hand-made HTTP request; returns (response bytes, seconds to first byte)."""
    u = urlparse(server.url)
    with socket.create_connection((u.hostname, u.port), timeout=20) as sock:
        started = time.monotonic()
        sock.sendall(head)
        try:
            for chunk in body_chunks:
                sock.sendall(chunk)
                if pause_s:
                    time.sleep(pause_s)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server refused the rest: expected for oversized bodies
        data = b""
        try:
            while not data.endswith(b"}") and len(data) < 65536:
                part = sock.recv(65536)
                if not part:
                    break
                data += part
        except (ConnectionResetError, TimeoutError):
            pass
        return data, time.monotonic() - started


def _head(path: str, extra: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}\r\n"
    ).encode()


def test_declared_body_over_limit_row_19(default_server: Server, chelsea_jpeg: bytes) -> None:
    path = "/v1/models/imgrec:predict"
    data, seconds = _raw_request(default_server, _head(path, "Content-Length: 500000000\r\n"), [])
    assert b" 413 " in data.split(b"\r\n")[0] and b'"payload_too_large"' in data
    assert seconds < 5
    assert_still_serving(default_server, chelsea_jpeg)


def test_chunked_body_over_limit_row_19(default_server: Server, chelsea_jpeg: bytes) -> None:
    # no Content-Length: the server counts while reading and stops at the 2 MB limit
    chunk = b"a" * 65536
    chunks = [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * 200  # 13 MB offered
    head = _head("/v1/models/imgrec:predict", "Transfer-Encoding: chunked\r\n")
    rss_before = default_server.rss_mb()
    data, _ = _raw_request(default_server, head, chunks)
    assert b" 413 " in data.split(b"\r\n")[0], data[:200]
    assert default_server.rss_mb() - rss_before < 50
    assert_still_serving(default_server, chelsea_jpeg)


def test_lying_content_length_row_19(default_server: Server, chelsea_jpeg: bytes) -> None:
    # announces 1000 bytes, sends 10 and stalls: 408 after the 1 s read timeout
    head = _head("/v1/models/imgrec:predict", "Content-Length: 1000\r\n")
    data, seconds = _raw_request(default_server, head, [b'{"instances'])
    assert b" 408 " in data.split(b"\r\n")[0] and b'"request_timeout"' in data
    assert seconds < 10
    assert_still_serving(default_server, chelsea_jpeg)


def test_multipart_is_refused_fast_row_20(default_server: Server, chelsea_jpeg: bytes) -> None:
    parts = (
        b"".join(
            b'--b\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nx\r\n' % i
            for i in range(5000)
        )
        + b"--b--\r\n"
    )
    started = time.monotonic()
    r = httpx.post(
        f"{default_server.url}/v1/models/imgrec:predict",
        content=parts,
        headers={"content-type": "multipart/form-data; boundary=b"},
        timeout=30,
    )
    assert r.status_code == 415 and r.json()["code"] == "unsupported_content_type"
    assert time.monotonic() - started < 5
    assert httpx.get(f"{default_server.url}/v2/health/ready", timeout=5).status_code == 200
    assert_still_serving(default_server, chelsea_jpeg)


def test_memory_stays_bounded(default_server: Server, chelsea_jpeg: bytes) -> None:
    b64 = base64.b64encode(chelsea_jpeg).decode()
    for _ in range(3):
        default_server.v1([{"image": {"b64": b64}}] * 8)
    before = default_server.rss_mb()
    big = base64.b64encode(b"\xff\xd8\xff" + b"\0" * 1_400_000).decode()  # corrupt, ~1.9 MB
    for _ in range(15):
        assert default_server.v1([{"image": {"b64": big}}]).status_code == 400
        assert default_server.v1([{"image": {"b64": b64}}] * 8).status_code == 200
    assert default_server.rss_mb() - before < 100
