"""The Samsar client's own transport (httpx over aiohttp's pool) on real sockets of 127.0.0.1:
every way a server can fail reaches the client as the httpx failure httpcore would have raised,
so members read "cannot be reached" or "did not answer" as they should; bodies go and come
whole; connections are kept and reused."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from core.errors import SamsarError, SamsarTimeout, SamsarUnreachable
from core.models import ExternalIdentity
from core.samsar.client import SamsarClient
from core.samsar.retry import RetryPolicy
from core.samsar.transport import SamsarTransport, samsar_http

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


@dataclass
class Server:
    url: str
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)


@contextlib.asynccontextmanager
async def serving(handler: Handler, tls: ssl.SSLContext | None = None) -> AsyncIterator[Server]:
    """A TCP server on a free port of 127.0.0.1 running `handler` on each connection."""
    server = Server("")

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server.connections += 1
        try:
            await handler(reader, writer)
        finally:
            writer.close()

    listening = await asyncio.start_server(accept, "127.0.0.1", 0, ssl=tls)
    port = listening.sockets[0].getsockname()[1]
    server.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    async with listening:
        yield server


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One request, its body read by its Content-Length."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head + await reader.readexactly(length)


async def get(url: str, *, limit: float = 5.0) -> httpx.Response:
    async with httpx.AsyncClient(transport=SamsarTransport(), timeout=limit) as http:
        response = await http.post(url, content=b"{}")
        await response.aread()
        return response


async def test_a_refused_connection_is_a_connect_error_not_a_timeout() -> None:
    async with serving(read_request) as server:
        url = server.url
    with pytest.raises(httpx.ConnectError):  # the port closed: nothing listens
        await get(url)


async def test_a_server_that_never_answers_is_a_read_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, _: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await reader.read()  # until the client gives up and closes

    async with serving(silent) as server:
        with pytest.raises(httpx.ReadTimeout):
            await get(server.url, limit=0.3)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (b"", httpx.RemoteProtocolError),  # hangs up before answering
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", httpx.RemoteProtocolError),  # not HTTP
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10, httpx.ReadError),
    ],
    ids=["hangs up", "not http", "body cut short"],
)
async def test_a_broken_answer_is_named_as_httpcore_names_it(
    answer: bytes, expected: type[httpx.TransportError]
) -> None:
    async def answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer)
        await writer.drain()

    async with serving(answers) as server:
        with pytest.raises(expected):
            await get(server.url)


async def test_a_streamed_body_goes_whole_with_its_length_and_connections_are_reused() -> None:
    async def answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while not reader.at_eof():
            try:
                server.requests.append(await read_request(reader))
            except asyncio.IncompleteReadError:
                return
            writer.write(OK)
            await writer.drain()

    async def pieces() -> AsyncIterator[bytes]:
        for n in range(50):
            yield bytes([65 + n % 26]) * 1000

    async with serving(answers) as server, httpx.AsyncClient(transport=SamsarTransport()) as http:
        for _ in range(3):
            response = await http.post(
                server.url, content=pieces(), headers={"Content-Length": "50000"}
            )
            assert response.status_code == 200 and response.json() == {}
    first = server.requests[0]
    head, _, body = first.partition(b"\r\n\r\n")
    assert b"content-length: 50000" in head.lower()
    assert b"transfer-encoding" not in head.lower()
    assert body == b"".join(bytes([65 + n % 26]) * 1000 for n in range(50))
    assert len(server.requests) == 3 and server.connections == 1


@pytest.mark.parametrize("client", ["httpx's own", "the Samsar client's"])
async def test_cookies_samsar_sets_are_not_sent_back(client: str) -> None:
    """httpx's client keeps a cookie and sends it with the next request (the control); the
    client `SamsarClient` makes for itself keeps none."""
    answer = OK.replace(b"\r\n\r\n", b"\r\nSet-Cookie: lb=node-7; Path=/\r\n\r\n", 1)

    async def answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                server.requests.append(await read_request(reader))
                writer.write(answer)
                await writer.drain()

    http = httpx.AsyncClient(transport=SamsarTransport()) if client == "httpx's own" else None
    async with serving(answers) as server, http or samsar_http() as made:
        for _ in range(2):
            response = await made.post(f"{server.url}/v1/a", content=b"{}")
            assert response.status_code == 200 and response.headers["set-cookie"]
    sent_back = b"cookie: lb=node-7" in server.requests[1].lower()
    assert sent_back is (client == "httpx's own")
    assert b"cookie:" not in server.requests[0].lower()


@pytest.mark.parametrize(
    ("behaviour", "expected"),
    [("refuses", SamsarUnreachable), ("hangs up", SamsarUnreachable), ("silent", SamsarTimeout)],
)
async def test_the_client_names_each_failure_for_members(
    behaviour: str, expected: type[SamsarError]
) -> None:
    async def handler(reader: asyncio.StreamReader, _: asyncio.StreamWriter) -> None:
        await read_request(reader)
        if behaviour == "silent":
            await reader.read()

    async with contextlib.AsyncExitStack() as stack:
        server = await stack.enter_async_context(serving(handler))
        if behaviour == "refuses":
            await stack.aclose()  # nothing listens on its port any more
        client = SamsarClient(
            "sk-test", f"{server.url}/v1", timeout=0.3, retry=RetryPolicy(attempts=1)
        )
        async with client:
            with pytest.raises(expected):
                await client.bootstrap_user(ExternalIdentity("discord", "1"), idempotency_key="k")


def self_signed(folder: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context with a certificate for 127.0.0.1 that no authority signed, and the
    certificate's file."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context, cert_file


async def answer_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
        await read_request(reader)
        writer.write(OK)
        await writer.drain()


async def test_certificates_are_checked_as_httpx_checks_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tls, cert_file = self_signed(tmp_path)
    async with serving(answer_once, tls) as server:
        with pytest.raises(httpx.ConnectError):  # signed by no authority it knows
            await get(server.url)
        monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))  # the operator's own authority
        assert (await get(server.url)).json() == {}
