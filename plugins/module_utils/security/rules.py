# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The security audit's rules: one entry per rule id, with its CIS section and its SOC 2,
HIPAA and GDPR references, registered in the shared findings registry.

CIS ids follow the numbering of the CIS PostgreSQL benchmark as pgdsat lists it (1 Installation
and Patches, 2 Directory and File Permissions, 3 Logging and Auditing, 4 User Access and
Authorization, 5 Connection and Login, 6 PostgreSQL Settings, 7 Replication, 8 Special
Configuration Considerations). Framework references name the control a finding weakens:
SOC 2 Trust Services Criteria (CC6.x logical access, CC7.x operations), the HIPAA Security Rule
(45 CFR 164.3xx) and GDPR articles. Plain Python: no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from collections import OrderedDict

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import findings as fnd

ANALYSIS = "security_audit"
FRAMEWORKS = ("CIS", "SOC 2", "HIPAA", "GDPR")

# Framework control sets by concern.
ACCESS = ("SOC 2 CC6.1", "SOC 2 CC6.3", "HIPAA 164.312(a)(1)", "GDPR Art. 32(1)(b)")
AUTHN = ("SOC 2 CC6.1", "HIPAA 164.312(d)", "GDPR Art. 32(1)(b)")
PASSWORDS = AUTHN + ("HIPAA 164.308(a)(5)(ii)(D)",)
TRANSIT = ("SOC 2 CC6.7", "HIPAA 164.312(e)(1)", "GDPR Art. 32(1)(a)")
AT_REST = ("SOC 2 CC6.1", "HIPAA 164.312(c)(1)", "GDPR Art. 5(1)(f)")
AUDIT = ("SOC 2 CC7.2", "HIPAA 164.312(b)", "GDPR Art. 33(5)")
EXPOSURE = ("SOC 2 CC6.6", "HIPAA 164.312(e)(1)", "GDPR Art. 32(1)(b)")
PATCHING = ("SOC 2 CC7.1", "HIPAA 164.308(a)(1)(ii)(B)", "GDPR Art. 32(1)(d)")
FILES = ("SOC 2 CC6.1", "HIPAA 164.312(a)(1)", "GDPR Art. 32(1)(b)")

# rule id -> (check, title, severity, CIS section, framework references, why)
RULES = OrderedDict()


def _rule(rule_id, check, title, severity, cis, frameworks, why):
    references = ("CIS PostgreSQL %s" % cis,) + tuple(frameworks)
    RULES[rule_id] = dict(
        check=check, title=title, severity=severity, cis=cis, references=references, why=why
    )
    fnd.register_rule(rule_id, title, severity, why, references, analysis=ANALYSIS)


# -- access ----------------------------------------------------------------------------------------
_rule(
    "SEC001",
    "access.superusers",
    "Superuser beyond the expected ones",
    "high",
    "4.2",
    ACCESS,
    "A superuser bypasses every permission check, row-level security and audit setting; each one "
    "is an account whose theft gives the whole cluster and the host's postgres account.",
)
_rule(
    "SEC002",
    "access.attributes",
    "Role with CREATEROLE it may not need",
    "medium",
    "4.2",
    ACCESS,
    "CREATEROLE lets a role create roles and (before 16) grant itself any non-superuser role's "
    "rights, including pg_execute_server_program's members.",
)
_rule(
    "SEC003",
    "access.attributes",
    "Role with CREATEDB it may not need",
    "low",
    "4.2",
    ACCESS,
    "CREATEDB lets a role create databases it owns, outside the reviewed schema and its grants.",
)
_rule(
    "SEC004",
    "access.attributes",
    "Role with BYPASSRLS",
    "high",
    "4.5",
    ACCESS + ("GDPR Art. 25",),
    "BYPASSRLS ignores every row-level security policy: the per-tenant or per-subject isolation "
    "those policies give does not apply to it.",
)
_rule(
    "SEC005",
    "access.attributes",
    "Login role with REPLICATION that is not replication-only",
    "medium",
    "7.1",
    ACCESS,
    "A replication role can stream a copy of every database; sharing it with an application "
    "account lets that account read all data through a base backup.",
)
_rule(
    "SEC006",
    "access.passwords",
    "Login role without a password",
    "medium",
    "5.2",
    AUTHN,
    "A login role with no password can log in only through trust, peer or certificate rules; "
    "one permissive pg_hba line lets anybody become it.",
)
_rule(
    "SEC007",
    "access.passwords",
    "Password stored as an md5 verifier",
    "medium",
    "5.9",
    PASSWORDS,
    "An md5 verifier is a password equivalent: whoever reads pg_authid (a backup, a dump of "
    "globals) can log in with it, and md5 is fast to brute-force.",
)
_rule(
    "SEC008",
    "access.passwords",
    "Password without expiry",
    "low",
    "5.3",
    PASSWORDS,
    "A password with no VALID UNTIL never forces the quarterly rotation the policy asks for.",
)
_rule(
    "SEC009",
    "access.weak_passwords",
    "Weak password (dictionary)",
    "critical",
    "5.3",
    PASSWORDS,
    "The password is in a list of common passwords: an online guessing attack finds it in seconds.",
)
_rule(
    "SEC010",
    "access.weak_passwords",
    "Password equals the role name",
    "critical",
    "5.3",
    PASSWORDS,
    "A password equal to the role name (or a trivial variant of it) is the first guess of any attacker.",
)
_rule(
    "SEC011",
    "access.membership",
    "Role that can become superuser through membership",
    "high",
    "4.2",
    ACCESS,
    "Membership in a superuser role (directly or through other roles) lets a role SET ROLE to "
    "it: the role is a superuser in all but name.",
)
_rule(
    "SEC012",
    "access.public_privileges",
    "PUBLIC may create objects in schema public",
    "high",
    "4.8",
    ACCESS,
    "Every role can create objects in schema public, which is first in the default "
    "search_path: a planted function or operator runs with the rights of whoever calls it "
    "(CVE-2018-1058 pattern).",
)
_rule(
    "SEC013",
    "access.public_privileges",
    "Table privileges granted to PUBLIC",
    "medium",
    "4.4",
    ACCESS + ("GDPR Art. 25",),
    "A grant to PUBLIC gives every present and future role the privilege, including roles "
    "created for other applications.",
)
_rule(
    "SEC014",
    "access.public_privileges",
    "SECURITY DEFINER function executable by PUBLIC",
    "medium",
    "4.3",
    ACCESS,
    "A SECURITY DEFINER function runs with its owner's rights; EXECUTE for PUBLIC (the default "
    "for functions) lets every role use those rights.",
)
_rule(
    "SEC015",
    "access.default_privileges",
    "Default privileges grant to PUBLIC",
    "medium",
    "4.4",
    ACCESS + ("GDPR Art. 25",),
    "Default privileges apply to every object created later: each new table or function is "
    "open to every role from the moment it exists.",
)
_rule(
    "SEC016",
    "access.security_definer",
    "SECURITY DEFINER function without a fixed search_path",
    "high",
    "4.3",
    ACCESS,
    "Without SET search_path the function resolves names in the caller's search_path: a caller "
    "who can create objects in a schema on it runs code with the owner's rights.",
)
_rule(
    "SEC017",
    "access.row_level_security",
    "Sensitive table without row-level security",
    "medium",
    "4.5",
    ACCESS + ("GDPR Art. 25", "GDPR Art. 32(1)(b)"),
    "The table is marked sensitive, but every role with SELECT reads every row: no policy "
    "limits rows per tenant or per purpose.",
)
_rule(
    "SEC018",
    "access.shared_credentials",
    "Login role shared by several clients and applications",
    "low",
    "5.7",
    AUTHN + ("SOC 2 CC6.2",),
    "One login used from several addresses by several applications cannot be rotated or "
    "revoked for one of them, and the audit log cannot tell who did what.",
)
# -- authentication -------------------------------------------------------------------------------
_rule(
    "SEC020",
    "auth.hba",
    "trust authentication over TCP",
    "critical",
    "5.2",
    AUTHN + EXPOSURE[:1],
    "trust accepts any connection that matches the line without a password: anyone who reaches "
    "the port can log in as any role the line allows, superusers included.",
)
_rule(
    "SEC021",
    "auth.hba",
    "trust authentication on the Unix socket",
    "medium",
    "5.1",
    AUTHN,
    "trust on the socket lets every OS account on the host log in as any role.",
)
_rule(
    "SEC022",
    "auth.hba",
    "Clear-text password authentication over TCP",
    "high",
    "5.2",
    AUTHN + TRANSIT[:1],
    "The password method sends the password in clear; without TLS anyone on the path reads it.",
)
_rule(
    "SEC023",
    "auth.hba",
    "md5 authentication in pg_hba.conf",
    "medium",
    "5.9",
    PASSWORDS,
    "md5 uses a weak challenge and keeps md5 verifiers usable; scram-sha-256 is the method to use.",
)
_rule(
    "SEC024",
    "auth.hba",
    "Wide address range in pg_hba.conf",
    "medium",
    "5.6",
    EXPOSURE,
    "A line open to a wide range (0.0.0.0/0, all, or a prefix shorter than /16) accepts "
    "connections from networks no application runs in.",
)
_rule(
    "SEC025",
    "auth.hba",
    "Superusers may log in over the network",
    "medium",
    "5.8",
    AUTHN,
    "A remote superuser login turns a leaked password into control of the cluster from anywhere "
    "the line allows.",
)
_rule(
    "SEC026",
    "auth.hba",
    "pg_hba.conf line for all databases and all users",
    "low",
    "5.7",
    ACCESS,
    "An 'all all' line gives every role a way into every database; lines per database and role "
    "keep each account where it belongs.",
)
_rule(
    "SEC027",
    "auth.hba",
    "pg_hba.conf line with an error",
    "high",
    "5.2",
    AUTHN,
    "A line PostgreSQL cannot parse makes the next reload keep the old rules (or refuse to start), "
    "so the file on disk is not what runs.",
)
_rule(
    "SEC028",
    "auth.settings",
    "password_encryption is not scram-sha-256",
    "high",
    "5.9",
    PASSWORDS,
    "New passwords are stored as md5 verifiers, password equivalents.",
)
_rule(
    "SEC029",
    "auth.settings",
    "authentication_timeout is long",
    "low",
    "5.4",
    AUTHN,
    "A long authentication timeout lets unauthenticated connections hold slots, easing "
    "connection exhaustion.",
)
# -- encryption in transit -------------------------------------------------------------------------
_rule(
    "SEC030",
    "tls.settings",
    "TLS is off",
    "high",
    "6.8",
    TRANSIT,
    "Without TLS, passwords of the password method, queries and results cross the network in clear.",
)
_rule(
    "SEC031",
    "tls.settings",
    "TLS protocol minimum below TLSv1.2",
    "medium",
    "6.8",
    TRANSIT,
    "TLS 1.0 and 1.1 are deprecated (RFC 8996) and allow downgrade attacks.",
)
_rule(
    "SEC032",
    "tls.settings",
    "Weak TLS ciphers allowed",
    "low",
    "6.8",
    TRANSIT,
    "ssl_ciphers lets clients negotiate ciphers without encryption, export-grade or broken "
    "ones (NULL, EXPORT, RC4, DES, MD5).",
)
_rule(
    "SEC033",
    "tls.hba",
    "Remote TCP connections allowed without TLS",
    "medium",
    "5.5",
    TRANSIT,
    "A 'host' line (not 'hostssl') accepts unencrypted connections from the network even when "
    "the server has TLS on.",
)
_rule(
    "SEC034",
    "tls.certificate",
    "Server certificate expires soon or has expired",
    "high",
    "6.8",
    TRANSIT,
    "When the certificate expires, clients with sslmode=verify-ca/verify-full stop connecting.",
)
_rule(
    "SEC035",
    "tls.client_certificates",
    "Service role logs in without a client certificate",
    "low",
    "6.8",
    TRANSIT + AUTHN[:1],
    "Service accounts can authenticate with certificates (mutual TLS): nothing to leak in a "
    "configuration file, and the server checks the client's identity.",
)
# -- at rest -------------------------------------------------------------------------------------------
_rule(
    "SEC040",
    "rest.checksums",
    "Data checksums are off",
    "medium",
    "1.3.3",
    AT_REST,
    "Without checksums silent corruption of data pages is not detected: integrity of stored "
    "data cannot be shown.",
)
# -- logging and auditing ------------------------------------------------------------------------------
_rule(
    "SEC050",
    "logging.connections",
    "Connections are not logged",
    "medium",
    "3.1.20",
    AUDIT,
    "Without log_connections the log has no record of who connected from where: no evidence for "
    "access reviews or breach investigations.",
)
_rule(
    "SEC051",
    "logging.connections",
    "Disconnections are not logged",
    "low",
    "3.1.21",
    AUDIT,
    "Without log_disconnections session durations cannot be established.",
)
_rule(
    "SEC052",
    "logging.line_prefix",
    "log_line_prefix lacks fields an audit needs",
    "low",
    "3.1.24",
    AUDIT,
    "Log lines without time, user, database, client and process cannot be attributed.",
)
_rule(
    "SEC053",
    "logging.statements",
    "DDL statements are not logged",
    "medium",
    "3.1.25",
    AUDIT,
    "With log_statement = none schema and role changes leave no trace in the log.",
)
_rule(
    "SEC054",
    "logging.collector",
    "The logging collector is off and logs go to stderr",
    "low",
    "3.1.3",
    AUDIT,
    "stderr output without the collector is lost unless the service manager keeps it.",
)
_rule(
    "SEC055",
    "logging.pgaudit",
    "pgaudit is not loaded",
    "medium",
    "3.2",
    AUDIT,
    "Session and object audit logging (who read or changed what) needs pgaudit; log_statement "
    "cannot tell the object a statement touched.",
)
_rule(
    "SEC056",
    "logging.pgaudit",
    "pgaudit does not log the classes an audit needs",
    "low",
    "3.2",
    AUDIT,
    "pgaudit.log without ddl and role misses schema and privilege changes.",
)
_rule(
    "SEC057",
    "logging.slow_statements",
    "No statement duration logging",
    "info",
    "3.1.14",
    AUDIT,
    "log_min_duration_statement = -1: long statements (bulk exports) leave no trace.",
)
# -- exposure and versions -------------------------------------------------------------------------
_rule(
    "SEC060",
    "exposure.listen_addresses",
    "Server listens on every address",
    "medium",
    "6.3",
    EXPOSURE,
    "listen_addresses = '*' opens the port on every interface, public ones included; pg_hba.conf "
    "is then the only barrier.",
)
_rule(
    "SEC061",
    "versions.release",
    "Minor release behind the release table",
    "high",
    "1.4",
    PATCHING,
    "Minor releases fix security and data-loss bugs only; running behind leaves fixed vulnerabilities open.",
)
_rule(
    "SEC062",
    "versions.release",
    "Major version out of community support",
    "critical",
    "1.4",
    PATCHING,
    "No security fixes are released for a major version past its end of life.",
)
_rule(
    "SEC063",
    "versions.release",
    "Server newer than the release table",
    "info",
    "1.4",
    PATCHING,
    "The shipped release table is older than this server: update the collection to judge it.",
)
# -- host files -------------------------------------------------------------------------------------
_rule(
    "SEC070",
    "host.files",
    "Data directory readable by other OS accounts",
    "high",
    "2.2",
    FILES,
    "Group or world access to the data directory exposes every table file and pg_authid.",
)
_rule(
    "SEC071",
    "host.files",
    "Configuration file readable or writable by other OS accounts",
    "medium",
    "2.4",
    FILES,
    "pg_hba.conf and postgresql.conf say who may connect and how; other accounts must not read "
    "or change them.",
)
_rule(
    "SEC072",
    "host.files",
    "TLS private key readable by other OS accounts",
    "high",
    "6.8",
    FILES + TRANSIT[:1],
    "A readable private key lets anyone impersonate the server.",
)


def finding(rule_id, obj, message, fix, evidence=None, severity=None):
    """A Finding of ``rule_id`` with the rule's title, why and references."""
    rule = RULES[rule_id]
    return fnd.Finding(
        rule=rule_id,
        severity=severity or rule["severity"],
        object=obj,
        message=message,
        fix=fix,
        why=rule["why"],
        evidence=evidence,
        references=list(rule["references"]),
        title=rule["title"],
    )


def check_references(check):
    """Every reference the rules of one check carry (the controls the check covers)."""
    refs = []
    for rule in RULES.values():
        if rule["check"] == check:
            refs.extend(r for r in rule["references"] if r not in refs)
    return refs


def framework_of(reference):
    for name in FRAMEWORKS:
        prefix = "CIS PostgreSQL " if name == "CIS" else name + " "
        if reference.startswith(prefix):
            return name, reference[len(prefix) :]
    return None, reference


def cis_sections():
    """CIS section -> rule ids."""
    out = OrderedDict()
    for rule_id, rule in RULES.items():
        out.setdefault(rule["cis"], []).append(rule_id)
    return out
