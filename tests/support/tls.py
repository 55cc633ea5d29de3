"""A TLS front for the plaintext dev server, and the certificates it needs.

``temporal server start-dev`` has no TLS options, so :class:`TLSProxy`
terminates TLS (optionally requiring a client certificate: mTLS) on a local
port and forwards the bytes to the dev server. It also decodes the HTTP/2
request headers the client sends (HPACK), so a test can see the
``authorization`` header an API key becomes. Certificates come from
:func:`make_pki` (``cryptography``): a CA, a server certificate for
``localhost``/127.0.0.1 and a client certificate, all signed by the CA.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import ssl
from dataclasses import dataclass, field
from pathlib import Path

import hpack
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HEADERS, CONTINUATION = 0x1, 0x9
END_HEADERS, PADDED, PRIORITY = 0x4, 0x8, 0x20


@dataclass(frozen=True)
class PKI:
    """PEM files of a test CA, a server (``localhost``) and a client certificate."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


def make_pki(folder: Path) -> PKI:
    """Create the CA, server and client certificates in ``folder`` (valid for a day)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("dlq test CA"))
          .issuer_name(_name("dlq test CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))

    def leaf(common_name: str, usage: x509.ObjectIdentifier,
             names: list[x509.GeneralName]) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder().subject_name(_name(common_name))
                   .issuer_name(ca.subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                                  critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                       ca_key.public_key()), critical=False))
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(ca_key, hashes.SHA256()), key

    server, server_key = leaf("localhost", ExtendedKeyUsageOID.SERVER_AUTH,
                              [x509.DNSName("localhost"),
                               x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    client, client_key = leaf("dlq-worker", ExtendedKeyUsageOID.CLIENT_AUTH, [])
    pki = PKI(ca=folder / "ca.pem", server_cert=folder / "server.pem",
              server_key=folder / "server-key.pem", client_cert=folder / "client.pem",
              client_key=folder / "client-key.pem")
    pki.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.server_cert.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    pki.client_cert.write_bytes(client.public_bytes(serialization.Encoding.PEM))
    _write_key(server_key, pki.server_key)
    _write_key(client_key, pki.client_key)
    return pki


@dataclass
class TLSProxy:
    """TLS (or mTLS) on ``127.0.0.1:<port>`` in front of a plaintext gRPC server.

    Attributes:
        upstream: ``host:port`` of the plaintext server.
        pki: Certificates; the proxy presents the server certificate.
        require_client_cert: mTLS: refuse clients without a certificate the CA signed.
        headers: Every HTTP/2 request header clients sent, as ``(name, value)``.
    """

    upstream: str
    pki: PKI
    require_client_cert: bool = False
    headers: list[tuple[str, str]] = field(default_factory=list)
    _server: asyncio.Server | None = None

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>`` where the proxy listens."""
        assert self._server is not None
        return f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def start(self) -> None:
        """Listen on a free port."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.pki.server_cert, self.pki.server_key)
        context.set_alpn_protocols(["h2"])  # gRPC clients require HTTP/2 by ALPN
        if self.require_client_cert:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(self.pki.ca)
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=context,
                                                  ssl_handshake_timeout=10)

    async def stop(self) -> None:
        """Stop listening and close the connections."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    def authorizations(self) -> set[str]:
        """The distinct ``authorization`` header values seen."""
        return {value for name, value in self.headers if name == "authorization"}

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, port = self.upstream.rsplit(":", 1)
        try:
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            writer.close()
            return
        decoder = hpack.Decoder()
        tasks = [asyncio.create_task(self._pump(reader, up_writer, decoder)),
                 asyncio.create_task(self._pump(up_reader, writer, None))]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        for w in (writer, up_writer):
            w.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    decoder: hpack.Decoder | None) -> None:
        """Copy bytes; on the client's side, also decode the request headers."""
        buffer = b""
        block = b""
        preface_seen = decoder is None
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
                if decoder is None:
                    continue
                buffer += data
                if not preface_seen:
                    if len(buffer) < len(PREFACE):
                        continue
                    buffer, preface_seen = buffer[len(PREFACE):], True
                while len(buffer) >= 9:
                    length = int.from_bytes(buffer[:3], "big")
                    kind, flags = buffer[3], buffer[4]
                    if len(buffer) < 9 + length:
                        break
                    payload, buffer = buffer[9:9 + length], buffer[9 + length:]
                    if kind == HEADERS:
                        pad = 0
                        if flags & PADDED:
                            pad, payload = payload[0], payload[1:]
                        if flags & PRIORITY:
                            payload = payload[5:]
                        block = payload[:len(payload) - pad] if pad else payload
                    elif kind == CONTINUATION:
                        block += payload
                    else:
                        continue
                    if flags & END_HEADERS:
                        try:
                            self.headers += [(str(n), str(v)) for n, v in decoder.decode(block)]
                        except hpack.HPACKError:
                            decoder = None  # not what we expected: forward, stop decoding
                            break
                        block = b""
        except (ConnectionError, ssl.SSLError):
            pass
