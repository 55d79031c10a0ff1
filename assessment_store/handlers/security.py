"""The security check: a real TLS handshake with the target and what it reveals.

Reports the certificate's expiry, whether it matches the host name, whether it is
self-signed or otherwise untrusted, and the negotiated protocol and cipher, with
findings graded by severity. A target that cannot be reached cannot be assessed:
that is a (retryable) failure, not a result.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from assessment_store.handlers.context import HandlerContext
from assessment_store.handlers.targets import parse_target

EXPIRY_WARNING_DAYS = 30
WEAK_PROTOCOLS = frozenset({"SSLv3", "TLSv1", "TLSv1.1"})
MIN_CIPHER_BITS = 128


class TargetUnreachableError(ConnectionError):
    """Raised when no TLS connection could be made (retried with backoff)."""


def _handshake(
    host: str, port: int, timeout: float, verify: bool
) -> tuple[bytes, str, tuple[str, str, int]]:
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((host, port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        version = tls.version()
        cipher = tls.cipher()
    if der is None or version is None or cipher is None:
        raise TargetUnreachableError(f"{host}:{port} completed no TLS handshake")
    return der, version, cipher


def _names(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        common = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return [str(a.value) for a in common], []
    dns = san.get_values_for_type(x509.DNSName)
    ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return dns, ips


def hostname_matches(host: str, dns_names: list[str], ip_names: list[str]) -> bool:
    """RFC 6125 matching: exact IPs; DNS names with a single left-most wildcard label."""
    try:
        return str(ipaddress.ip_address(host)) in ip_names
    except ValueError:
        pass
    host_labels = host.lower().rstrip(".").split(".")
    for name in dns_names:
        labels = name.lower().rstrip(".").split(".")
        if len(labels) != len(host_labels):
            continue
        if labels[0] == "*" and len(labels) > 2 and labels[1:] == host_labels[1:]:
            return True
        if labels == host_labels:
            return True
    return False


def is_self_signed(cert: x509.Certificate) -> bool:
    """Issuer equals subject and the certificate's own key verifies its signature."""
    if cert.issuer != cert.subject:
        return False
    key = cert.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            assert cert.signature_hash_algorithm is not None
            key.verify(
                cert.signature,
                cert.tbs_certificate_bytes,
                padding.PKCS1v15(),
                cert.signature_hash_algorithm,
            )
        elif isinstance(key, ec.EllipticCurvePublicKey):
            assert cert.signature_hash_algorithm is not None
            key.verify(
                cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm)
            )
        else:
            return True  # same names; a key type we do not verify
    except Exception:
        return False
    return True


def run(ctx: HandlerContext) -> dict[str, Any]:
    """``handler(ctx) -> dict`` for assessment type ``security``."""
    target = parse_target(ctx.request.server_name, default_port=443)
    timeout = max(0.1, min(ctx.remaining_seconds, ctx.request.options.timeout or 30.0))
    ctx.report_progress(10, f"TLS handshake with {target.host}:{target.port}")
    verify_error = None
    try:
        der, version, cipher = _handshake(target.host, target.port, timeout, verify=True)
    except ssl.SSLCertVerificationError as exc:
        verify_error = exc.verify_message or str(exc)
        try:
            der, version, cipher = _handshake(target.host, target.port, timeout, verify=False)
        except (OSError, ssl.SSLError) as inner:
            raise TargetUnreachableError(f"{target}: {inner}") from inner
    except (OSError, ssl.SSLError) as exc:
        raise TargetUnreachableError(f"{target}: {type(exc).__name__}: {exc}") from exc
    ctx.report_progress(60, "inspecting the certificate")
    cert = x509.load_der_x509_certificate(der)
    dns_names, ip_names = _names(cert)
    expires = cert.not_valid_after_utc
    days_left = (expires - datetime.now(UTC)).total_seconds() / 86_400
    self_signed = is_self_signed(cert)
    matches = hostname_matches(target.host, dns_names, ip_names)
    findings: list[dict[str, str]] = []
    if days_left < 0:
        findings.append({"severity": "critical", "issue": "certificate expired"})
    elif days_left < EXPIRY_WARNING_DAYS:
        findings.append(
            {"severity": "warning", "issue": f"certificate expires in {days_left:.0f} days"}
        )
    if self_signed:
        findings.append({"severity": "high", "issue": "self-signed certificate"})
    elif verify_error:
        findings.append({"severity": "high", "issue": f"untrusted certificate: {verify_error}"})
    if not matches:
        findings.append(
            {"severity": "high", "issue": f"certificate does not match host {target.host}"}
        )
    if version in WEAK_PROTOCOLS:
        findings.append({"severity": "high", "issue": f"weak protocol {version}"})
    if cipher[2] < MIN_CIPHER_BITS:
        findings.append(
            {"severity": "high", "issue": f"weak cipher {cipher[0]} ({cipher[2]} bits)"}
        )
    result: dict[str, Any] = {
        "target": str(target),
        "tls": {"protocol": version, "cipher": cipher[0], "cipherBits": cipher[2]},
        "certificate": {
            "subject": cert.subject.rfc4514_string(),
            "issuer": cert.issuer.rfc4514_string(),
            "notAfter": expires.isoformat(),
            "daysUntilExpiry": round(days_left, 2),
            "dnsNames": dns_names,
            "ipAddresses": ip_names,
            "selfSigned": self_signed,
            "trusted": verify_error is None,
            "hostnameMatches": matches,
        },
        "findings": findings,
        "secure": not any(f["severity"] in ("critical", "high") for f in findings),
    }
    if ctx.request.options.include_details:
        result["certificate"]["serialNumber"] = format(cert.serial_number, "x")
        result["certificate"]["notBefore"] = cert.not_valid_before_utc.isoformat()
    ctx.report_progress(90, f"{len(findings)} finding(s)")
    return result
