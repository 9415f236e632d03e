"""Bounded request reading in the real `syncctl api`: slow bodies and heads are cut with a 408,
oversized heads refused with a 431, and other users are served meanwhile."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.processes import Api, running_api
from tests.support.random_refs import random_user

SECONDS = 1.0  # the body and head deadlines of this API
SLOW_UPLOADS = 24


@pytest.fixture(scope="module")
def api(shared_database_url: str) -> Iterator[Api]:
    with running_api(
        shared_database_url,
        request_body_seconds=str(SECONDS),
        request_head_seconds=str(SECONDS),
        max_header_count="50",
        max_header_bytes=str(16 * 1024),
    ) as api:
        yield api


def connect(api: Api) -> socket.socket:
    host, port = api.base_url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=30)


def answer_of(sock: socket.socket) -> tuple[int, dict[str, str], dict[str, object]]:
    """Status, headers and problem document of the one answer, read until the server hangs up
    (which it must: the connection is closed after a 408 or 431)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, json.loads(body)


def assert_problem(answer: tuple[int, dict[str, str], dict[str, object]], status: int) -> str:
    code, headers, body = answer
    assert code == status, answer
    assert headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close"
    assert body["status"] == status and body["correlation_id"]
    return str(body["detail"])


def test_slow_uploads_are_cut_with_a_408_while_other_users_are_served(api: Api) -> None:
    socks = [connect(api) for _ in range(SLOW_UPLOADS)]
    started = time.monotonic()
    for sock in socks:
        sock.sendall(
            b"POST /sync/tasks/sync_slow/progress HTTP/1.1\r\nHost: api\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
        )
    stop = threading.Event()

    def drip() -> None:  # a byte a tenth of a second each, far slower than the deadline needs
        while not stop.wait(0.1):
            for sock in socks:
                with contextlib.suppress(OSError):  # cut already
                    sock.sendall(b" ")

    dripper = threading.Thread(target=drip, daemon=True)
    dripper.start()
    try:
        with httpx.Client(base_url=api.base_url, timeout=10) as client:
            user = random_user("served")
            for _ in range(3):
                before = time.monotonic()
                assert client.get("/healthz").status_code == 200
                click = client.post("/sync/smart", headers=api.headers(user))
                assert click.status_code == 202, click.text
                assert time.monotonic() - before < SECONDS  # not queued behind the uploads
        answers = [answer_of(sock) for sock in socks]
        cut_after = time.monotonic() - started
    finally:
        stop.set()
        dripper.join()
        for sock in socks:
            sock.close()
    for answer in answers:
        assert "did not arrive within 1 s" in assert_problem(answer, 408)
        assert answer[2]["type"] == "urn:sync-coordinator:problem:request-timeout"
    assert SECONDS <= cut_after < SECONDS + 10  # cut at the deadline, not by the client


def test_a_slow_or_silent_head_is_cut_with_a_408(api: Api) -> None:
    with connect(api) as silent, connect(api) as dripping:
        dripping.sendall(b"GET /healthz HTTP/1.1\r\nHost: api\r\n")
        for _ in range(3):  # then nothing more: the head never ends
            time.sleep(SECONDS / 4)
            dripping.sendall(b"X-Drip: a\r\n")
        for sock in (silent, dripping):
            detail = assert_problem(answer_of(sock), 408)
            assert "request line and headers did not arrive within 1 s" in detail


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ([f"X-Field-{n}: v" for n in range(51)], "more than 50 header fields"),
        (["X-Big: " + "a" * (16 * 1024)], "over 16384 bytes"),
        ([], "over 16384 bytes"),  # the request line alone
    ],
    ids=["51 fields", "a 16 KiB field", "a 16 KiB path"],
)
def test_an_oversized_head_is_refused_with_a_431(api: Api, headers: list[str], why: str) -> None:
    path = "/healthz" if headers else "/healthz?" + "q" * (16 * 1024)
    with connect(api) as sock:
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: api\r\n{''.join(h + chr(13) + chr(10) for h in headers)}"
            "\r\n".encode()
        )
        detail = assert_problem(answer_of(sock), 431)
    assert why in detail


def test_a_head_within_the_limits_is_served(api: Api) -> None:
    headers = {f"X-Field-{n}": "v" * 100 for n in range(40)}
    token = api.headers(random_user("big"))["Authorization"]
    answer = httpx.get(f"{api.base_url}/sync/status", headers={**headers, "Authorization": token})
    assert answer.status_code == 200, answer.text
