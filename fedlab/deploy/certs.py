"""Certificates for one deployment's TLS, made with the ``cryptography`` package.

A federation's SuperLink proves who it is with a certificate signed by a certificate
authority (CA) that every SuperNode and the ``flwr`` command trust. For a run on one
machine :func:`make_certificates` makes both: a CA for this run only, and a SuperLink
certificate for ``127.0.0.1``/``localhost`` signed by it (ECDSA P-256, valid for a few
days). A real federation's CA is its operator's (a hospital's IT signs, or a public CA);
the SuperNodes then get only ``ca.pem``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

__all__ = ["make_certificates"]


def _name(common: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fedlab deployment"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_certificates(folder: str | Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
                      days: int = 3) -> dict[str, Path]:
    """Write ``ca.pem``, ``server.pem`` and ``server.key`` for ``hosts`` to ``folder``,
    valid for ``days`` days; their paths by role (``"ca"``, ``"cert"``, ``"key"``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    until = now + dt.timedelta(days=days)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("fedlab run CA"))
          .issuer_name(_name("fedlab run CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now)
          .not_valid_after(until)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    alt = [x509.IPAddress(ipaddress.ip_address(h)) if h.replace(".", "").isdigit()
           else x509.DNSName(h) for h in hosts]
    cert = (x509.CertificateBuilder().subject_name(_name(hosts[0]))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(until)
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    paths = {"ca": folder / "ca.pem", "cert": folder / "server.pem", "key": folder / "server.key"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    paths["key"].chmod(0o600)
    return paths
