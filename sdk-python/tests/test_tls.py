"""The embedded relay serves ``wss://`` with a certificate made at test time
(trustme): Python's own ``ssl`` module and the SDK client (``ca_file``)
both trust it through the test CA, and nothing else does."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

import zerorelay


@pytest.fixture
def pki(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A test CA and a certificate for 127.0.0.1 and localhost it issued."""
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    paths = {name: str(tmp_path / f"{name}.pem") for name in ("ca", "cert", "key")}
    ca.cert_pem.write_to_path(paths["ca"])
    with open(paths["cert"], "wb") as f:
        for blob in leaf.cert_chain_pems:
            f.write(blob.bytes())
    leaf.private_key_pem.write_to_path(paths["key"])
    yield paths


def tls_config(pki: dict[str, str]) -> dict[str, object]:
    return {"tls": {"cert_file": pki["cert"], "key_file": pki["key"]}}


def upgrade(host: str, port: int, context: ssl.SSLContext) -> tuple[str, str]:
    """A WebSocket upgrade for /ws over a stdlib TLS socket: the TLS version
    and the response's status line."""
    key = base64.b64encode(os.urandom(16)).decode()
    with socket.create_connection((host, port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            tls.sendall(
                (
                    f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                    f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                    "Sec-WebSocket-Version: 13\r\n\r\n"
                ).encode()
            )
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                chunk = tls.recv(4096)
                if not chunk:
                    break
                head += chunk
            return str(tls.version()), head.split(b"\r\n", 1)[0].decode()


async def test_python_ssl_upgrades_to_a_websocket_over_wss_with_the_test_ca(
    pki: dict[str, str],
) -> None:
    async with zerorelay.Server(tls_config(pki)) as s:
        assert s.url == f"wss://{s.address}/ws"
        trusting = ssl.create_default_context(cafile=pki["ca"])
        version, status = await asyncio.to_thread(upgrade, s.host, s.port, trusting)
        assert version in ("TLSv1.2", "TLSv1.3")
        assert status.startswith("HTTP/1.1 101")
        # Without the test CA the certificate is not trusted.
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.to_thread(upgrade, s.host, s.port, ssl.create_default_context())


async def test_the_sdk_client_says_hello_over_wss_when_it_trusts_the_ca(
    pki: dict[str, str],
) -> None:
    async with zerorelay.Server(tls_config(pki)) as s:
        async with zerorelay.connect(s.url, user="alice", ca_file=pki["ca"]) as c:
            await c.join("room")
            await c.publish("room", "hello over tls", echo=True)
            m = await c.recv(timeout=5)
            assert (m.data, m.sender, m.group) == ("hello over tls", "alice", "room")
        # Without it the handshake fails: no connection, however long it tries.
        with pytest.raises(zerorelay.ConnectionFailed, match="certificate"):
            await zerorelay.connect(s.url, user="bob", reconnect=False, connect_timeout=5)
