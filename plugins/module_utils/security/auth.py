# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Authentication checks: the rules of pg_hba.conf as the server parsed them
(pg_hba_file_rules), password_encryption and authentication_timeout.

Plain Python: no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress

from ansible_collections.dbarch.postgresql.plugins.module_utils.security.rules import finding

HBA_SQL = (
    "SELECT line_number, type, database, user_name, address, netmask, auth_method, options, error "
    "FROM pg_catalog.pg_hba_file_rules ORDER BY line_number"
)
TCP_TYPES = ("host", "hostssl", "hostnossl", "hostgssenc", "hostnogssenc")
LOOPBACK_WORDS = ("localhost", "samehost")
WIDE_WORDS = ("all", "samenet")
MIN_PREFIX_V4 = 16
MIN_PREFIX_V6 = 48
MAX_AUTH_TIMEOUT_S = 60


def network_of(rule):
    """An ip_network for the rule's address (address/netmask or CIDR), or None for a keyword."""
    address = rule.get("address")
    if not address or address in LOOPBACK_WORDS + WIDE_WORDS:
        return None
    try:
        if rule.get("netmask"):
            prefix = bin(int(ipaddress.ip_address(rule["netmask"]))).count("1")
            return ipaddress.ip_network("%s/%d" % (address, prefix), strict=False)
        return ipaddress.ip_network(address, strict=False)
    except ValueError:
        return None  # a host name


def is_loopback(rule):
    if rule.get("type") == "local":
        return True
    if rule.get("address") in LOOPBACK_WORDS:
        return True
    net = network_of(rule)
    return net is not None and net.is_loopback


def is_wide(rule):
    if rule.get("address") in WIDE_WORDS:
        return True
    net = network_of(rule)
    if net is None:
        return False
    return net.prefixlen < (MIN_PREFIX_V4 if net.version == 4 else MIN_PREFIX_V6)


def where(rule):
    return "pg_hba.conf line %s" % rule.get("line_number")


def describe(rule):
    parts = [
        rule.get("type") or "?",
        ",".join(rule.get("database") or []),
        ",".join(rule.get("user_name") or []),
    ]
    if rule.get("address"):
        parts.append(rule["address"] + (("/" + rule["netmask"]) if rule.get("netmask") else ""))
    parts.append(rule.get("auth_method") or "")
    return " ".join(p for p in parts if p)


def _users_can_be_superuser(rule, superusers):
    users = rule.get("user_name") or []
    if "all" in users:
        return sorted(superusers)
    return sorted(u for u in users if u in superusers)


def check_hba(ctx):
    out = []
    superusers = {r["rolname"] for r in ctx.roles if r["rolsuper"]}
    for rule in ctx.hba_rules():
        obj = where(rule)
        line = describe(rule)
        evidence = dict(rule=line)
        if rule.get("error"):
            out.append(
                finding(
                    "SEC027",
                    obj,
                    "%s has an error: %s" % (obj, rule["error"]),
                    "Correct line %s of pg_hba.conf, then SELECT pg_reload_conf();" % rule.get("line_number"),
                    evidence=evidence,
                )
            )
            continue
        method = rule.get("auth_method")
        tcp = rule.get("type") in TCP_TYPES
        loopback = is_loopback(rule)
        if method == "trust" and tcp:
            out.append(
                finding(
                    "SEC020",
                    obj,
                    "%s (%s) lets TCP clients in without a password." % (obj, line),
                    "Replace trust with scram-sha-256 on line %s (hostssl ... scram-sha-256), then "
                    "SELECT pg_reload_conf();" % rule.get("line_number"),
                    evidence=evidence,
                    severity="high" if loopback else None,
                )
            )
        elif method == "trust":
            out.append(
                finding(
                    "SEC021",
                    obj,
                    "%s (%s) lets every OS account in without a password." % (obj, line),
                    "Replace trust with peer (with a pg_ident.conf map) or scram-sha-256 on line %s."
                    % rule.get("line_number"),
                    evidence=evidence,
                )
            )
        if method == "password" and tcp and rule.get("type") != "hostssl":
            out.append(
                finding(
                    "SEC022",
                    obj,
                    "%s (%s) accepts clear-text passwords over TCP without TLS." % (obj, line),
                    "Use scram-sha-256 on a hostssl line instead (line %s)." % rule.get("line_number"),
                    evidence=evidence,
                )
            )
        if method == "md5":
            out.append(
                finding(
                    "SEC023",
                    obj,
                    "%s (%s) uses md5." % (obj, line),
                    "Set password_encryption = 'scram-sha-256', reset the passwords of the roles that still "
                    "have md5 verifiers, then use scram-sha-256 on line %s." % rule.get("line_number"),
                    evidence=evidence,
                )
            )
        if tcp and is_wide(rule) and method != "reject":
            out.append(
                finding(
                    "SEC024",
                    obj,
                    "%s (%s) accepts a wide address range." % (obj, line),
                    "Narrow the address of line %s to the application subnets (e.g. 10.1.2.0/24)."
                    % rule.get("line_number"),
                    evidence=evidence,
                )
            )
        if tcp and not loopback and method not in ("reject", "cert"):
            supers = _users_can_be_superuser(rule, superusers)
            if supers:
                out.append(
                    finding(
                        "SEC025",
                        obj,
                        "%s (%s) lets superusers %s log in from the network."
                        % (obj, line, ", ".join(supers)),
                        "Add 'host all %s 0.0.0.0/0 reject' before line %s (superusers log in on the socket)."
                        % (",".join(supers), rule.get("line_number")),
                        evidence=dict(evidence, superusers=supers),
                    )
                )
        if (
            tcp
            and not loopback
            and method != "reject"
            and "all" in (rule.get("database") or [])
            and "all" in (rule.get("user_name") or [])
        ):
            out.append(
                finding(
                    "SEC026",
                    obj,
                    "%s (%s) matches every database and every role." % (obj, line),
                    "Replace line %s with lines that name each database and role (or group role +name)."
                    % rule.get("line_number"),
                    evidence=evidence,
                )
            )
    return out


def check_settings(ctx):
    out = []
    enc = ctx.setting("password_encryption")
    if enc is not None and enc not in ("scram-sha-256",):
        out.append(
            finding(
                "SEC028",
                "password_encryption",
                "password_encryption is %s." % enc,
                "ALTER SYSTEM SET password_encryption = 'scram-sha-256'; SELECT pg_reload_conf();",
                evidence=dict(setting=enc),
            )
        )
    timeout = ctx.setting_int("authentication_timeout")
    if timeout is not None and timeout > MAX_AUTH_TIMEOUT_S:
        out.append(
            finding(
                "SEC029",
                "authentication_timeout",
                "authentication_timeout is %ss (more than %ss)." % (timeout, MAX_AUTH_TIMEOUT_S),
                "ALTER SYSTEM SET authentication_timeout = '30s'; SELECT pg_reload_conf();",
                evidence=dict(seconds=timeout),
            )
        )
    return out
