"""Real local targets for the handlers, used by the demo and the tests: an HTTP server,
TLS servers with certificates made on the spot, and a stand-in for the external
compliance server. They listen on loopback only."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

API_KEY = "test-compliance-key"


class _Quiet(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None


class _Hello(_Quiet):
    """GET: 200 "hello"; ``/down`` answers 503; ``/slow`` answers after 5 seconds."""

    def do_GET(self) -> None:
        if self.path.startswith("/slow"):
            time.sleep(5)
        status = 503 if self.path.startswith("/down") else 200
        body = b"hello"
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Compliance(_Quiet):
    """POST /assessments: the answer depends on the request's serverName: ``slow*``
    answers after 3 s, ``broken*`` 500, ``invalid*`` 422, ``flaky*`` 500 on the first
    call for an assessment and 200 after; anything else 200 with a report."""

    calls: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).calls.append(payload)
        if self.headers.get("Authorization") != f"Bearer {API_KEY}":
            return self._answer(401, {"error": "bad api key"})
        server = payload.get("serverName") or ""
        if server.startswith("slow"):
            time.sleep(3)
        first_call = [c["assessmentId"] for c in type(self).calls].count(
            payload.get("assessmentId")
        ) == 1
        if server.startswith("broken") or (server.startswith("flaky") and first_call):
            return self._answer(500, {"error": "internal"})
        if server.startswith("invalid"):
            return self._answer(422, {"error": "unknown server"})
        self._answer(
            200,
            {
                "assessmentId": payload["assessmentId"],
                "status": "compliant",
                "controls": [{"id": "CIS-1.1", "passed": True}],
            },
        )
        return None

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        return None  # a client that hung up (a test's timeout) is not news


@contextmanager
def _serve(server: ThreadingHTTPServer) -> Iterator[int]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def http_server() -> Iterator[int]:
    """A plain HTTP server on 127.0.0.1; yields its port (``/down`` answers 503)."""
    with _serve(_Server(("127.0.0.1", 0), _Hello)) as port:
        yield port


@contextmanager
def compliance_server() -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """The fake external compliance server; yields (port, the requests it received)."""
    calls: list[dict[str, Any]] = []
    handler = type("Compliance", (_Compliance,), {"calls": calls})
    with _serve(_Server(("127.0.0.1", 0), handler)) as port:
        yield port, calls


def make_certificate(
    directory: Path,
    *,
    names: list[str],
    expired: bool = False,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
) -> tuple[Path, Path, x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate for ``names`` (DNS names or IPs), self-signed unless ``issuer``."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = dt.datetime.now(dt.UTC)
    not_after = now - dt.timedelta(days=1) if expired else now + dt.timedelta(days=90)
    alt: list[x509.GeneralName] = []
    for name in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    issuer_cert, issuer_key = issuer if issuer else (None, key)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject if issuer_cert else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=30))
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(
            x509.BasicConstraints(ca=issuer is None and names[0] == "Test CA", path_length=None),
            critical=True,
        )
        .sign(issuer_key, hashes.SHA256())
    )
    stem = names[0].replace("*", "star").replace(" ", "_")
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path, cert, key


@contextmanager
def tls_server(cert_path: Path, key_path: Path) -> Iterator[int]:
    """An HTTPS server on 127.0.0.1 presenting the given certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    server = _Server(("127.0.0.1", 0), _Hello)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    with _serve(server) as port:
        yield port
