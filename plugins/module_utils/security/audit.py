# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One security audit pass over a cluster: run every check the login role's rights allow, list the
others in ``checks_skipped`` with the reason, and summarize the findings per framework (CIS,
SOC 2, HIPAA, GDPR) and as checklists (access control, encryption, GDPR: pass / fail / manual).

Least privilege: with pg_monitor and pg_read_all_settings every settings, privileges and catalog
check runs; what needs more (pg_authid for passwords, pg_hba_file_rules, the host's files) is
skipped, never a failure. Plain Python: no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fnmatch
import os
import time
from collections import OrderedDict

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import findings as fnd
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.versions import Features
from ansible_collections.dbarch.postgresql.plugins.module_utils.security import (
    access,
    auth,
    config,
    host,
    releases,
    rules,
    tls,
)

INSUFFICIENT_PRIVILEGE = "42501"


class AuditError(DbarchError, ValueError):
    pass


class SkipCheck(DbarchError):
    """A check that cannot run here: its reason goes to checks_skipped."""


# check id -> (function, what it needs in words, for the documentation)
CHECKS = OrderedDict(
    [
        ("access.superusers", access.check_superusers),
        ("access.attributes", access.check_attributes),
        ("access.membership", access.check_membership),
        ("access.passwords", access.check_passwords),
        ("access.weak_passwords", access.check_weak_passwords),
        ("access.never_logged_in", None),
        ("access.public_privileges", access.check_public_privileges),
        ("access.default_privileges", access.check_default_privileges),
        ("access.security_definer", access.check_security_definer),
        ("access.row_level_security", access.check_row_level_security),
        ("access.shared_credentials", access.check_shared_credentials),
        ("auth.hba", auth.check_hba),
        ("auth.settings", auth.check_settings),
        ("tls.settings", tls.check_settings),
        ("tls.hba", tls.check_hba),
        ("tls.certificate", tls.check_certificate),
        ("tls.client_certificates", tls.check_client_certificates),
        ("rest.checksums", config.check_checksums),
        ("rest.disk_encryption", None),
        ("rest.backup_encryption", None),
        ("logging.connections", config.check_connections),
        ("logging.line_prefix", config.check_line_prefix),
        ("logging.statements", config.check_statements),
        ("logging.collector", config.check_collector),
        ("logging.slow_statements", config.check_slow_statements),
        ("logging.pgaudit", config.check_pgaudit),
        ("exposure.listen_addresses", config.check_listen_addresses),
        ("versions.release", releases.check_minor),
        ("host.files", host.check_files),
    ]
)

# Checks this version does not automate: the reason stated in checks_skipped (and the checklist's
# "manual").
NOT_AUTOMATED = {
    "access.never_logged_in": "needs the server log (log_connections); read it with "
    "dbarch.postgresql.audit_log_info; unknown here",
    "rest.disk_encryption": "disk encryption (LUKS/dm-crypt, RDS StorageEncrypted) is not read by this "
    "module: check it by hand",
    "rest.backup_encryption": "backup repository encryption is set in the backup role's variables "
    "(pgBackRest repo cipher): check them by hand",
}

CHECKLISTS = OrderedDict(
    [
        (
            "access_control",
            [
                (
                    "Only the expected superusers, none reachable through membership",
                    ["access.superusers", "access.membership"],
                ),
                (
                    "Role attributes (CREATEROLE, CREATEDB, BYPASSRLS, REPLICATION) limited to need",
                    ["access.attributes"],
                ),
                (
                    "Every login role has a scram-sha-256 password that is not weak and expires",
                    ["access.passwords", "access.weak_passwords", "auth.settings"],
                ),
                (
                    "No privileges for PUBLIC, no default privileges for PUBLIC",
                    ["access.public_privileges", "access.default_privileges"],
                ),
                ("SECURITY DEFINER functions pin their search_path", ["access.security_definer"]),
                (
                    "pg_hba.conf: no trust, md5 or password over TCP, narrow ranges, no remote superuser",
                    ["auth.hba"],
                ),
                ("One login role per application", ["access.shared_credentials"]),
                ("Roles that never log in are removed", ["access.never_logged_in"]),
            ],
        ),
        (
            "encryption",
            [
                ("TLS on, minimum TLSv1.2, strong ciphers", ["tls.settings"]),
                ("Remote connections only through hostssl lines", ["tls.hba"]),
                ("Server certificate valid for 90 days or more", ["tls.certificate"]),
                ("Service roles authenticate with client certificates", ["tls.client_certificates"]),
                ("Data checksums on", ["rest.checksums"]),
                ("Disk encryption at rest", ["rest.disk_encryption"]),
                ("Backup repository encryption", ["rest.backup_encryption"]),
            ],
        ),
        (
            "gdpr",
            [
                (
                    "Art. 25/32: sensitive tables protected by row-level security",
                    ["access.row_level_security"],
                ),
                ("Art. 32(1)(a): personal data encrypted in transit", ["tls.settings", "tls.hba"]),
                (
                    "Art. 30/33: access to personal data is logged (connections, DDL, pgaudit)",
                    ["logging.connections", "logging.statements", "logging.pgaudit"],
                ),
                ("Art. 32(1)(d): the server is patched", ["versions.release"]),
                ("Art. 30: records of processing (PII inventory with pii_inventory_info)", []),
            ],
        ),
    ]
)


class Context:
    """What the checks read: the session, the server's settings, roles and rights of the login."""

    def __init__(
        self,
        session,
        expected_superusers=(),
        password_dictionary=(),
        allowed_attributes=None,
        sensitive_tables=(),
        service_roles=(),
        activity_samples=3,
        activity_interval=1.0,
        tcp_host=None,
        tcp_port=None,
    ):
        self.session = session
        self.features = Features(session.server_version_num)
        self.expected_superusers = list(expected_superusers)
        self.password_dictionary = list(password_dictionary or [])
        self.allowed_attributes = dict(allowed_attributes or {})
        self.sensitive_tables = list(sensitive_tables or [])
        self.service_roles = list(service_roles or [])
        self.samples = max(1, int(activity_samples))
        self.interval = float(activity_interval)
        self._tcp = (tcp_host, tcp_port)
        self.facts = {}
        self._verifiers = None
        self._hba = None
        rows = session.fetchall("SELECT name, setting FROM pg_catalog.pg_settings")
        self.settings = dict((r["name"], r["setting"]) for r in rows)
        self.database = session.scalar("SELECT current_database()")
        me = session.fetchone(
            "SELECT r.rolname, r.rolsuper, pg_has_role(r.oid, 'pg_read_all_settings', 'USAGE') AS settings, "
            "pg_has_role(r.oid, 'pg_read_all_stats', 'USAGE') AS stats FROM pg_catalog.pg_roles r "
            "WHERE r.rolname = current_user"
        )
        self.login = dict(
            role=me["rolname"],
            superuser=me["rolsuper"],
            read_all_settings=me["settings"],
            read_all_stats=me["stats"],
        )
        self.roles = session.fetchall(access.ROLES_SQL)
        self.members = session.fetchall(access.MEMBERS_SQL)

    # -- settings --------------------------------------------------------------------------------
    def setting(self, name):
        return self.settings.get(name)

    def setting_int(self, name):
        value = self.settings.get(name)
        try:
            return int(value)
        except (TypeError, ValueError):
            return None

    def data_path(self, path):
        if not path:
            return None
        if os.path.isabs(path):
            return path
        data_dir = self.setting("data_directory")
        return os.path.join(data_dir, path) if data_dir else None

    def tcp_target(self):
        host, port = self._tcp
        if host and not str(host).startswith("/"):
            return host, port or self.setting_int("port") or 5432
        return None, None

    # -- roles -----------------------------------------------------------------------------------
    def members_of_anything(self, oid):
        return [m["roleid"] for m in self.members if m["member"] == oid]

    def verifiers(self):
        """role name -> stored verifier (pg_authid: superuser only). Kept in memory only."""
        if self._verifiers is None:
            if not self.login["superuser"]:
                raise SkipCheck("reading pg_authid (stored password verifiers) needs superuser")
            rows = self.session.fetchall(access.VERIFIERS_SQL)
            self._verifiers = dict((r["rolname"], r["rolpassword"]) for r in rows)
        return self._verifiers

    def hba_rules(self):
        if self._hba is None:
            try:
                self._hba = self.session.fetchall(auth.HBA_SQL)
            except pg.PgError as exc:
                if exc.sqlstate == INSUFFICIENT_PRIVILEGE:
                    raise SkipCheck(
                        "pg_hba_file_rules needs superuser (or GRANT EXECUTE ON FUNCTION pg_hba_file_rules "
                        "to the audit role)"
                    ) from None
                raise
        return self._hba

    def activity_samples(self):
        if not (self.login["superuser"] or self.login["read_all_stats"]):
            raise SkipCheck(
                "the client addresses of other roles' sessions need pg_read_all_stats (pg_monitor)"
            )
        samples = []
        for i in range(self.samples):
            if i:
                time.sleep(self.interval)
            samples.append(self.session.fetchall(access.ACTIVITY_SQL))
        return samples


def _selected(check, skip):
    return not any(fnmatch.fnmatchcase(check, pattern) or check.split(".")[0] == pattern for pattern in skip)


def run(ctx, checks_skip=()):
    """Run the checks; returns (findings, checks_run, checks_skipped)."""
    found, run_ids, skipped = [], [], []
    for check, function in CHECKS.items():
        if not _selected(check, checks_skip or ()):
            skipped.append(dict(check=check, reason="listed in checks_skip"))
            continue
        if function is None:
            skipped.append(dict(check=check, reason=NOT_AUTOMATED[check]))
            continue
        if check == "access.row_level_security" and not ctx.sensitive_tables:
            skipped.append(dict(check=check, reason="no table is marked sensitive (option sensitive_tables)"))
            continue
        if check == "tls.client_certificates" and not ctx.service_roles:
            skipped.append(dict(check=check, reason="no service role is named (option service_roles)"))
            continue
        try:
            result = function(ctx)
        except (SkipCheck, host.NotOnHost, tls.CertificateError) as exc:
            skipped.append(dict(check=check, reason=str(exc)))
            continue
        except pg.PgError as exc:
            if exc.sqlstate == INSUFFICIENT_PRIVILEGE:
                skipped.append(dict(check=check, reason="the login role lacks a privilege: %s" % exc))
                continue
            raise
        except OSError as exc:
            skipped.append(dict(check=check, reason="cannot be done here: %s" % exc))
            continue
        run_ids.append(check)
        found.extend(result)
    return fnd.normalize(found), run_ids, skipped


def summarize(found, checks_run, checks_skipped):
    """Per framework: each control the run checks, pass or fail, with its findings; plus counts."""
    active = [f for f in found if not f.suppressed]
    failing_refs = {}
    for f in active:
        if f.severity == "info":
            continue
        for ref in f.references:
            failing_refs.setdefault(ref, []).append("%s %s" % (f.rule, f.object))
    summary = OrderedDict()
    for framework in rules.FRAMEWORKS:
        controls = OrderedDict()
        for check in checks_run:
            for ref in rules.check_references(check):
                name, control = rules.framework_of(ref)
                if name != framework:
                    continue
                entry = controls.setdefault(control, dict(status="pass", checks=[], findings=0))
                entry["checks"].append(check)
                if ref in failing_refs:
                    entry["status"] = "fail"
                    entry["findings"] = len(failing_refs[ref])
        controls = OrderedDict(sorted(controls.items(), key=lambda kv: _control_key(kv[0])))
        summary[framework] = dict(
            controls=controls,
            passed=sum(1 for c in controls.values() if c["status"] == "pass"),
            failed=sum(1 for c in controls.values() if c["status"] == "fail"),
        )
    counts = fnd.counts(found)
    return dict(
        frameworks=summary,
        counts=counts,
        checks_run=len(checks_run),
        checks_skipped=len(checks_skipped),
        release_table_date=releases.TABLE_DATE,
    )


def _control_key(control):
    parts = []
    for piece in control.replace("(", ".").replace(")", "").split("."):
        parts.append((0, int(piece), "") if piece.isdigit() else (1, 0, piece))
    return parts


def checklist(found, checks_run, checks_skipped):
    """The access-control, encryption and GDPR checklists: each item pass, fail or manual."""
    by_check = {}
    for f in found:
        if f.suppressed or f.severity == "info":
            continue
        by_check.setdefault(rules.RULES[f.rule]["check"], []).append(f)
    skipped = dict((s["check"], s["reason"]) for s in checks_skipped)
    out = OrderedDict()
    for name, items in CHECKLISTS.items():
        rows = []
        for title, checks in items:
            hits = [f for c in checks for f in by_check.get(c, [])]
            missing = [c for c in checks if c not in checks_run]
            if hits:
                status = "fail"
            elif not checks or missing:
                status = "manual"
            else:
                status = "pass"
            row = dict(
                item=title,
                status=status,
                checks=checks,
                findings=["%s %s" % (f.rule, f.object) for f in hits],
            )
            if missing:
                row["reason"] = "; ".join("%s: %s" % (c, skipped.get(c, "not run")) for c in missing)
            rows.append(row)
        out[name] = rows
    return out


def audit(session, checks_skip=(), **options):
    """The whole pass: returns a dict with findings (Finding objects), checks_run, checks_skipped,
    summary, checklist, login and facts."""
    unknown = [
        p
        for p in checks_skip or ()
        if not any(fnmatch.fnmatchcase(c, p) or c.split(".")[0] == p for c in CHECKS)
    ]
    if unknown:
        raise AuditError(
            "checks_skip names no check: %s. Checks: %s (or an area: access, auth, tls, rest, logging, "
            "exposure, versions, host)." % (", ".join(unknown), ", ".join(CHECKS))
        )
    ctx = Context(session, **options)
    found, checks_run, checks_skipped = run(ctx, checks_skip)
    return dict(
        findings=found,
        checks_run=checks_run,
        checks_skipped=checks_skipped,
        summary=summarize(found, checks_run, checks_skipped),
        checklist=checklist(found, checks_run, checks_skipped),
        login=ctx.login,
        facts=ctx.facts,
    )


def report_summary(summary, checklist_, checks_skipped):
    """The summary flattened for the report's table: per framework, the checklists, skipped checks."""
    out = OrderedDict()
    for framework, entry in summary["frameworks"].items():
        failed = [c for c, v in entry["controls"].items() if v["status"] == "fail"]
        out["%s controls" % framework] = "%d passed, %d failed%s" % (
            entry["passed"],
            entry["failed"],
            (": " + ", ".join(failed)) if failed else "",
        )
    for name, rows in checklist_.items():
        tally = OrderedDict((s, 0) for s in ("pass", "fail", "manual"))
        for row in rows:
            tally[row["status"]] += 1
        out["checklist %s" % name] = ", ".join("%d %s" % (n, s) for s, n in tally.items())
        for row in rows:
            detail = ""
            if row["status"] == "fail":
                detail = " (%s)" % ", ".join(row["findings"])
            elif row["status"] == "manual":
                detail = " (%s)" % (row.get("reason") or "check by hand")
            out["%s: %s" % (name, row["item"])] = row["status"].upper() + detail
    out["checks run"] = summary["checks_run"]
    out["checks skipped"] = "; ".join("%s: %s" % (s["check"], s["reason"]) for s in checks_skipped) or "none"
    out["release table date"] = summary["release_table_date"]
    return out
