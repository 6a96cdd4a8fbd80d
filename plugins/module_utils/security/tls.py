# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Encryption in transit: ssl settings, hostssl-only rules, client certificates of service roles,
and the server certificate's expiry, read from the certificate file when this host can read it,
else from a TLS handshake with the server (PostgreSQL's SSLRequest, then TLS).

Plain Python: no Ansible imports (the ``cryptography`` package reads certificates when installed;
without it the expiry check is skipped with the reason).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import os
import socket
import ssl
import struct

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.security import auth
from ansible_collections.dbarch.postgresql.plugins.module_utils.security.rules import finding

try:
    from cryptography import x509

    HAS_CRYPTOGRAPHY = True
except ImportError:  # pragma: no cover - hosts without the package
    x509 = None
    HAS_CRYPTOGRAPHY = False

UTC = datetime.timezone.utc  # noqa: UP017 - datetime.UTC needs Python 3.11
SSL_REQUEST_CODE = 80877103
PROTOCOL_ORDER = ("", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
WEAK_CIPHER_WORDS = ("NULL", "EXPORT", "RC4", "DES", "MD5", "ADH", "AECDH")
EXPIRY_HIGH_DAYS = 30
EXPIRY_LOW_DAYS = 90


class CertificateError(DbarchError):
    pass


def check_settings(ctx):
    out = []
    if ctx.setting("ssl") != "on":
        out.append(
            finding(
                "SEC030",
                "ssl",
                "ssl is off: connections are not encrypted.",
                "Run the dbarch.postgresql.tls role (certificate, key, ssl = on, hostssl rules), or "
                "ALTER SYSTEM SET ssl = on; SELECT pg_reload_conf(); with the certificate and key in place.",
            )
        )
        return out
    minimum = ctx.setting("ssl_min_protocol_version") or ""
    if minimum in PROTOCOL_ORDER and PROTOCOL_ORDER.index(minimum) < PROTOCOL_ORDER.index("TLSv1.2"):
        out.append(
            finding(
                "SEC031",
                "ssl_min_protocol_version",
                "ssl_min_protocol_version is %s." % (minimum or "unset"),
                "ALTER SYSTEM SET ssl_min_protocol_version = 'TLSv1.2'; SELECT pg_reload_conf();",
            )
        )
    ciphers = ctx.setting("ssl_ciphers") or ""
    weak = [w for w in WEAK_CIPHER_WORDS if _allows(ciphers, w)]
    if weak:
        out.append(
            finding(
                "SEC032",
                "ssl_ciphers",
                "ssl_ciphers (%s) allows %s." % (ciphers, ", ".join(weak)),
                "ALTER SYSTEM SET ssl_ciphers = 'HIGH:!aNULL:!MD5:!3DES:!RC4'; SELECT pg_reload_conf();",
            )
        )
    return out


def _allows(ciphers, word):
    parts = [p.strip() for p in ciphers.replace(",", ":").split(":")]
    mentioned = [p for p in parts if word in p.upper()]
    return bool(mentioned) and not any(p.startswith("!") or p.startswith("-") for p in mentioned)


def check_hba(ctx):
    out = []
    for rule in ctx.hba_rules():
        if rule.get("error") or rule.get("type") != "host" or rule.get("auth_method") == "reject":
            continue
        if auth.is_loopback(rule):
            continue
        out.append(
            finding(
                "SEC033",
                auth.where(rule),
                "%s (%s) accepts connections without TLS from the network."
                % (auth.where(rule), auth.describe(rule)),
                "Change line %s to hostssl (and add 'hostnossl all all 0.0.0.0/0 reject' before it)."
                % rule.get("line_number"),
                evidence=dict(rule=auth.describe(rule)),
            )
        )
    return out


def check_client_certificates(ctx):
    out = []
    for name in ctx.service_roles:
        rules = [
            r
            for r in ctx.hba_rules()
            if not r.get("error")
            and r.get("type") in auth.TCP_TYPES
            and not auth.is_loopback(r)
            and ("all" in (r.get("user_name") or []) or name in (r.get("user_name") or []))
            and r.get("auth_method") != "reject"
        ]
        loose = [
            r
            for r in rules
            if r.get("auth_method") != "cert"
            and not any("clientcert=verify-full" in str(o) for o in (r.get("options") or []))
        ]
        if loose:
            out.append(
                finding(
                    "SEC035",
                    name,
                    "Service role %s can log in from the network without a client certificate (%s)."
                    % (name, ", ".join(auth.where(r) for r in loose)),
                    "Use 'hostssl <db> %s <subnet> cert' (or scram-sha-256 clientcert=verify-full) for it."
                    % name,
                )
            )
    return out


def not_after_from_pem(data):
    if not HAS_CRYPTOGRAPHY:
        raise CertificateError("the Python package cryptography is not installed where the module runs")
    cert = x509.load_pem_x509_certificate(data)
    return _not_after(cert)


def not_after_from_der(data):
    if not HAS_CRYPTOGRAPHY:
        raise CertificateError("the Python package cryptography is not installed where the module runs")
    return _not_after(x509.load_der_x509_certificate(data))


def _not_after(cert):
    value = getattr(cert, "not_valid_after_utc", None)
    if value is None:
        value = cert.not_valid_after.replace(tzinfo=UTC)
    return value


def handshake_certificate(host, port, timeout=10):
    """The server certificate (DER) from a TLS handshake: SSLRequest, 'S', then TLS (no verification:
    only the certificate is read)."""
    with socket.create_connection((host, int(port)), timeout=timeout) as raw:
        raw.sendall(struct.pack("!II", 8, SSL_REQUEST_CODE))
        answer = raw.recv(1)
        if answer != b"S":
            raise CertificateError("the server at %s:%s does not offer TLS" % (host, port))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with context.wrap_socket(raw, server_hostname=host if not host.startswith("/") else None) as tls:
            return tls.getpeercert(binary_form=True)


def check_certificate(ctx):
    if ctx.setting("ssl") != "on":
        return []
    path = ctx.data_path(ctx.setting("ssl_cert_file") or "server.crt")
    source = None
    if path and os.path.isfile(path) and os.access(path, os.R_OK):
        with open(path, "rb") as handle:
            not_after = not_after_from_pem(handle.read())
        source = "file %s" % path
    else:
        host, port = ctx.tcp_target()
        if not host:
            raise CertificateError(
                "the certificate file is not readable here and the module connects on a Unix socket"
            )
        not_after = not_after_from_der(handshake_certificate(host, port))
        source = "TLS handshake with %s:%s" % (host, port)
    days = (not_after - datetime.datetime.now(UTC)).days
    ctx.facts["certificate"] = dict(not_after=not_after.isoformat(), days_left=days, source=source)
    if days >= EXPIRY_LOW_DAYS:
        return []
    severity = "critical" if days < 0 else ("high" if days < EXPIRY_HIGH_DAYS else "low")
    state = "expired %d days ago" % -days if days < 0 else "expires in %d days" % days
    return [
        finding(
            "SEC034",
            "server certificate",
            "The server certificate %s (%s, read from the %s)."
            % (state, not_after.date().isoformat(), source),
            "Renew it (the dbarch.postgresql.tls role), then SELECT pg_reload_conf();",
            evidence=dict(days_left=days, not_after=not_after.isoformat(), source=source),
            severity=severity,
        )
    ]
