#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: security_audit_info
short_description: Security audit of a PostgreSQL cluster, with CIS, SOC 2, HIPAA and GDPR references
version_added: "0.1.0"
description:
  - One pass over a cluster, covering access control (superusers, role attributes, passwords and their
    verifiers, weak passwords tested offline, membership walked to superuser, PUBLIC and default
    privileges, SECURITY DEFINER functions, row-level security of sensitive tables, shared
    credentials), authentication (C(pg_hba_file_rules), C(password_encryption),
    C(authentication_timeout)), encryption in transit (C(ssl), protocol minimum, ciphers,
    C(hostssl)-only rules, client certificates of service roles, server certificate expiry), data
    checksums, logging and pgaudit, C(listen_addresses), the minor version against the release
    table shipped with the collection, and file permissions when it runs on the database host.
  - Every finding carries its CIS PostgreSQL benchmark section and SOC 2, HIPAA and GDPR references,
    says why it matters and gives the SQL or setting that fixes it.
  - Least privilege. With C(pg_monitor) and C(pg_read_all_settings) the settings, catalog and
    privilege checks run; checks that need more (stored verifiers in C(pg_authid) and
    C(pg_hba_file_rules) need superuser; file permissions need the host) are listed in
    RV(checks_skipped) with the reason, never a failure. Works on RDS (host checks skipped).
  - Weak passwords are found offline. Each stored SCRAM-SHA-256 or md5 verifier is recomputed
    where the module runs, from its stored salt and iteration count, for each dictionary word and
    for the role's own name. Nothing is sent to the server and no password text appears in the
    output, only C(weak (dictionary)) or C(equals role name).
  - Privileges are read in the login database (O(login_db)); run it once per database for every
    database's grants.
  - Read-only; never reports a change.
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  expected_superusers:
    description:
      - The roles that may be superusers. Any other superuser is a finding.
    type: list
    elements: str
    default: [postgres]
  password_dictionary:
    description:
      - Words to test the stored passwords against, on top of the dictionary shipped with the
        collection, or absolute paths of files (on the host that runs the module) with one word
        a line.
    type: list
    elements: str
    default: []
  checks_skip:
    description:
      - Checks not to run, by id (C(access.weak_passwords)), glob (C(logging.*)) or area (C(host)).
        RV(checks_run) and RV(checks_skipped) list the ids.
    type: list
    elements: str
    default: []
  allowed_attributes:
    description:
      - Role name -> attributes it needs (C(createrole), C(createdb), C(bypassrls), C(replication)),
        for which no finding is reported.
    type: dict
    default: {}
  sensitive_tables:
    description:
      - Tables (C(schema.table), or C(table) in C(public)) holding personal or sensitive data; each
        must have row-level security on.
    type: list
    elements: str
    default: []
  service_roles:
    description:
      - Service login roles that must authenticate with a client certificate (mutual TLS) from the
        network.
    type: list
    elements: str
    default: []
  activity_samples:
    description:
      - Samples of C(pg_stat_activity) taken to find login roles shared by several client addresses
        and applications.
    type: int
    default: 3
  activity_interval:
    description:
      - Seconds between two samples of C(pg_stat_activity).
    type: float
    default: 1.0
extends_documentation_fragment:
  - dbarch.postgresql.connection
  - dbarch.postgresql.connection.findings
  - dbarch.postgresql.attributes.read_only
seealso:
  - module: dbarch.postgresql.report
  - module: dbarch.postgresql.setting
notes:
  - The release table's date is returned in C(release_table_date) of RV(summary); a server newer than the
    table gets an C(info) finding asking for a newer collection.
  - The server certificate is read from its file when the module runs on the database host, else
    from a TLS handshake with O(login_host) (the Python package C(cryptography) reads it).
"""

EXAMPLES = r"""
- name: Audit the cluster as a least-privilege role (pg_monitor, pg_read_all_settings)
  dbarch.postgresql.security_audit_info:
    login_host: db1.example.com
    login_user: auditor
    login_password: "{{ vault_auditor_password }}"
    expected_superusers: [postgres]
  register: audit

- name: Full audit as superuser on the host, with the company's password list and sensitive tables
  dbarch.postgresql.security_audit_info:
    login_db: app
    password_dictionary: [/etc/security/banned-passwords.txt, acme2025]
    sensitive_tables: [public.customers, billing.cards]
    service_roles: [etl]
    allowed_attributes:
      replicator: [replication]
    checks_skip: [access.shared_credentials]
  become: true
  become_user: postgres
  register: audit

- name: Write the report (Markdown, JSON, JUnit, SARIF)
  dbarch.postgresql.report:
    name: security_audit
    title: Security audit
    findings: "{{ audit.findings }}"
    summary: "{{ audit.summary }}"
"""

RETURN = r"""
findings:
  description:
    - The findings, most severe first, each with C(rule), C(title), C(severity), C(object),
      C(message), C(why), C(fix), C(evidence), C(references) (CIS section, SOC 2, HIPAA, GDPR) and
      C(suppressed).
  returned: always
  type: list
  elements: dict
  sample:
    - rule: SEC016
      title: SECURITY DEFINER function without a fixed search_path
      severity: high
      object: public.grant_bonus(integer)
      message: SECURITY DEFINER function public.grant_bonus(integer) (owner app) has no fixed search_path.
      fix: ALTER FUNCTION public.grant_bonus(integer) SET search_path = pg_catalog, pg_temp;
      references: [CIS PostgreSQL 4.3, SOC 2 CC6.1, SOC 2 CC6.3, HIPAA 164.312(a)(1), GDPR Art. 32(1)(b)]
checks_run:
  description: Ids of the checks that ran.
  returned: always
  type: list
  elements: str
checks_skipped:
  description:
    - Checks not run, each with C(check) and C(reason) (a missing privilege, not on the host, not automated).
  returned: always
  type: list
  elements: dict
summary:
  description:
    - C(frameworks) (C(CIS), C(SOC 2), C(HIPAA), C(GDPR)) each with C(controls) (control -> C(status)
      pass/fail, C(checks), C(findings)), C(passed) and C(failed); C(counts) per severity;
      C(checks_run), C(checks_skipped); C(release_table_date).
  returned: always
  type: dict
checklist:
  description: The access_control, encryption and gdpr checklists, each a list of C(item), C(status)
    (pass, fail or manual), C(checks), C(findings) and, for manual items, C(reason).
  returned: always
  type: dict
report_summary:
  description:
    - The summary flattened for dbarch.postgresql.report's table
      (O(dbarch.postgresql.report#module:summary)), with passed and failed controls per framework,
      each checklist item's status, the checks skipped and the release table's date.
  returned: always
  type: dict
login:
  description: The login role and its rights (C(superuser), C(read_all_settings), C(read_all_stats)).
  returned: always
  type: dict
facts:
  description: C(release) (minor, newest known, days and releases behind, end of life) and
    C(certificate) (not_after, days_left, source) when read.
  returned: always
  type: dict
queries:
  description: The SQL the module ran.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.ansible_module import DbarchModule
from ansible_collections.dbarch.postgresql.plugins.module_utils.security import audit

ARGUMENT_SPEC = dict(
    expected_superusers=dict(type="list", elements="str", default=["postgres"]),
    password_dictionary=dict(type="list", elements="str", default=[], no_log=False),
    checks_skip=dict(type="list", elements="str", default=[]),
    allowed_attributes=dict(type="dict", default={}),
    sensitive_tables=dict(type="list", elements="str", default=[]),
    service_roles=dict(type="list", elements="str", default=[]),
    activity_samples=dict(type="int", default=3),
    activity_interval=dict(type="float", default=1.0),
)


def main():
    module = DbarchModule(argument_spec=ARGUMENT_SPEC, findings=True, supports_check_mode=True)
    p = module.params
    if p["activity_samples"] < 1 or p["activity_interval"] < 0:
        module.fail_json(msg="activity_samples must be at least 1 and activity_interval at least 0.")

    def work(session):
        return audit.audit(
            session,
            checks_skip=p["checks_skip"],
            expected_superusers=p["expected_superusers"],
            password_dictionary=p["password_dictionary"],
            allowed_attributes=p["allowed_attributes"],
            sensitive_tables=p["sensitive_tables"],
            service_roles=p["service_roles"],
            activity_samples=p["activity_samples"],
            activity_interval=p["activity_interval"],
            tcp_host=p["login_host"] or session.conn.info.host,
            tcp_port=p["login_port"] or session.conn.info.port,
        )

    result, queries = module.run(work)
    found = module.suppress(result["findings"])[0]
    run, skipped = result["checks_run"], result["checks_skipped"]
    summary = audit.summarize(found, run, skipped)
    checklist = audit.checklist(found, run, skipped)
    module.exit_findings(
        found,
        checks_run=run,
        checks_skipped=skipped,
        summary=summary,
        checklist=checklist,
        report_summary=audit.report_summary(summary, checklist, skipped),
        login=result["login"],
        facts=result["facts"],
        queries=queries,
    )


if __name__ == "__main__":
    main()
