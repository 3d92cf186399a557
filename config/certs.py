"""`lonja certs init DIR`: a development CA, a server certificate and a client certificate, as PEM files.

For trying TLS and mutual TLS on one machine: the server certificate names 127.0.0.1, ::1 and localhost.
Not for production: the CA key lies beside the certificates it signed.
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from .errors import ConfigError

FILES = ("ca.pem", "ca.key", "server.pem", "server.key", "client.pem", "client.key")


def init_certs(directory: Path, force: bool = False, days: int = 365) -> dict[str, Path]:
    """Write the CA, server and client certificates and keys into `directory`; returns the paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    paths = {name: directory / name for name in FILES}
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not force:
        raise ConfigError(f"{', '.join(existing)} already exist: use --force to replace them")
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)

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
        if ca:
            builder = builder.add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False),
                                            critical=True)
        else:
            builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            builder = builder.add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.IPAddress(ipaddress.ip_address("::1"))]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    def write(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, stem: str) -> None:
        paths[f"{stem}.pem"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        paths[f"{stem}.key"].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                           serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))
        paths[f"{stem}.key"].chmod(0o600)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = certificate("lonja development CA", ca_key, name("lonja development CA"), ca_key, True, [])
    write(ca_cert, ca_key, "ca")
    for stem, usages in (("server", [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                         ("client", [ExtendedKeyUsageOID.CLIENT_AUTH])):
        key = ec.generate_private_key(ec.SECP256R1())
        write(certificate(f"lonja {stem}", key, ca_cert.subject, ca_key, False, usages), key, stem)
    return paths
