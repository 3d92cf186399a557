"""`lonja certs init DIR`: a development CA, a server certificate and a client certificate, as PEM files.

For trying TLS and mutual TLS on one machine: the server certificate names 127.0.0.1, ::1 and localhost.
Not for production: the CA key lies beside the certificates it signed. Each run makes a CA with its own
name, so certificates from two runs never pass for each other (OpenSSL then says "unknown ca").
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
from pathlib import Path

from .errors import ConfigError

FILES = ("ca.pem", "ca.key", "server.pem", "server.key", "client.pem", "client.key")


def init_certs(directory: Path, force: bool = False, days: int = 365, names: tuple[str, ...] = ()) -> dict[str, Path]:
    """Write the CA, server and client certificates and keys into `directory`; returns the paths.

    The server and client certificates name 127.0.0.1, ::1, localhost and each of `names` (host names
    or IP addresses, for hosts that serve on another address)."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError as exc:
        raise ConfigError(f"making certificates needs the cryptography package ({exc}): "
                          f"pip install 'lonja[tls]'") from None

    paths = {name: directory / name for name in FILES}
    existing = [p.name for p in paths.values() if p.exists()]
    if existing and not force:
        raise ConfigError(f"{directory} already holds {', '.join(existing)}: use --force to replace them")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {directory}: {exc.strerror or exc}") from None
    alternative = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                   x509.IPAddress(ipaddress.ip_address("::1"))]
    for extra in names:
        try:
            alternative.append(x509.IPAddress(ipaddress.ip_address(extra)))
        except ValueError:
            alternative.append(x509.DNSName(extra))
    now = datetime.datetime.now(datetime.UTC)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "lonja development"),
                          x509.NameAttribute(NameOID.COMMON_NAME, common)])

    def certificate(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
                    signer: ec.EllipticCurvePrivateKey, ca: bool, usages: list) -> x509.Certificate:
        builder = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(issuer)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=days))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        # Key identifiers and key usages too: Python 3.13's default contexts verify strictly (VERIFY_X509_STRICT).
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        if ca:
            builder = builder.add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False),
                                            critical=True)
        else:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False)
            builder = builder.add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                                            critical=True)
            builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            builder = builder.add_extension(x509.SubjectAlternativeName(alternative), critical=False)
        return builder.sign(signer, hashes.SHA256())

    def write(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, stem: str) -> None:
        _write(paths[f"{stem}.pem"], cert.public_bytes(serialization.Encoding.PEM), 0o644)
        _write(paths[f"{stem}.key"], key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()), 0o600)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = f"lonja development CA {secrets.token_hex(4)}"
    ca_cert = certificate(ca_name, ca_key, name(ca_name), ca_key, True, [])
    write(ca_cert, ca_key, "ca")
    for stem, usages in (("server", [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                         ("client", [ExtendedKeyUsageOID.CLIENT_AUTH])):
        key = ec.generate_private_key(ec.SECP256R1())
        write(certificate(f"lonja {stem}", key, ca_cert.subject, ca_key, False, usages), key, stem)
    return paths


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write `data` to `path` created with `mode` (a key is never readable by others, not even briefly)."""
    try:
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
