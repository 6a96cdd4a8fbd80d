#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: migrate
short_description: Apply Flyway-compatible SQL migrations to a PostgreSQL database
version_added: "0.1.0"
description:
  - Applies versioned (C(V<version>__<description>.sql)), undo (C(U<version>__<description>.sql)) and
    repeatable (C(R__<description>.sql)) SQL migration files, and keeps their history in a table with
    the columns of Flyway's C(flyway_schema_history), with Flyway's checksums. A database that Flyway
    already manages validates and continues without a new baseline.
  - Versions are compared number by number (C(1.10) comes after C(1.9)); C(_) separates numbers as a
    dot does (C(V1_2) is version C(1.2)). The description is the rest of the name with C(_) as spaces.
    Repeatable migrations run after the versioned ones, in description order, whenever their checksum
    changed.
  - The files are read on the controller by the action plugin and shipped with the task, so the
    migrations of the playbook project apply to any host without copying them first.
  - Each migration runs in its own transaction together with its history row. A migration whose
    statements cannot run in a transaction (C(CREATE/DROP INDEX CONCURRENTLY), C(REINDEX CONCURRENTLY),
    C(VACUUM), C(ALTER SYSTEM), C(CREATE/DROP DATABASE), C(CREATE/DROP TABLESPACE)), found by parsing
    the file with pglast, runs statement by statement outside a transaction; a file that mixes them with
    other statements is refused. When such a migration fails part way, its history row stays with
    C(success=false) and later runs refuse to continue until O(command=repair).
  - One advisory lock per history table is held for the whole run, so concurrent runs wait for each
    other (at most O(lock_wait_timeout)) and never apply a migration twice.
  - A failure names the file, the line of the statement, the SQLSTATE, the server's message and the
    statement; the database stays at the last migration that succeeded. The failed result still lists
    what the run applied before (RV(applied), with C(changed=true)) and the migration that failed
    (RV(failed_migration)).
  - Nothing is written before every check passed (validation of the history, O(target), the lint, the
    placeholders and the parsing of every pending file); the history table is created right after, before
    the first migration runs (or when nothing is pending, as Flyway does). A syntax error, an unknown
    placeholder or a lint stop leave the database exactly as it was.
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  path:
    description:
      - Folder of the migration files on the controller, searched recursively. A relative path is looked
        up in the role's C(files/), the role, the playbook's C(files/) and the playbook's folder.
      - Files must be UTF-8. Other files than C(V*.sql), C(U*.sql) and C(R*.sql) are ignored.
    type: path
    required: true
  command:
    description:
      - V(migrate) applies the pending migrations (after validating the history).
      - V(info) reports the current version, the history and the pending migrations; it changes nothing.
      - V(validate) compares the history with the files and fails with a finding per file when they
        disagree (C(MG-001) checksum drift, C(MG-002) applied migration missing from disk, C(MG-003)
        pending migration older than the current version, C(MG-004) failed migration, C(MG-005)
        description drift).
      - V(baseline) marks an existing database as being at O(baseline_version); it refuses a history
        that is not empty.
      - V(repair) removes the rows of failed migrations, realigns the checksums and descriptions of
        applied migrations with the files, and marks applied migrations whose files are gone as deleted.
      - V(undo) runs the undo file of the latest applied version (or of every version above O(target))
        and records it as C(UNDO_SQL); the version is then no longer applied.
    type: str
    default: migrate
    choices: [migrate, info, validate, baseline, repair, undo]
  target:
    description:
      - Highest version to migrate to. Versions above it stay pending. Default is the latest.
      - As in Flyway, a version that no migration file and no history row has fails the run, naming the
        nearest available versions; end it with C(?) (for example C(3?)) or set
        O(fail_on_missing_target=false) to migrate up to the highest version below it instead.
      - With O(command=undo), undo every applied version above it (latest first).
    type: str
  fail_on_missing_target:
    description:
      - Fail when O(target) names a version that no migration has (Flyway's C(failOnMissingTarget)).
    type: bool
    default: true
  placeholders:
    description:
      - Values for C(${name}) placeholders in the migration files. An unknown placeholder fails the
        task naming the file and line.
      - Built in, as in Flyway, C(${flyway:defaultSchema}) (O(schema)), C(${flyway:user}),
        C(${flyway:database}), C(${flyway:table}) (O(table)), C(${flyway:filename}),
        C(${flyway:timestamp}) (the time of the run, C(yyyy-MM-dd HH:mm:ss), local time of the host that
        runs the module), C(${flyway:workingDirectory}) (O(working_directory)) and
        C(${flyway:environment}) (O(environment)).
      - As in Flyway, versioned and undo files are checksummed as written, before placeholders are replaced,
        and repeatable files after, so a changed placeholder value runs a repeatable migration again, and so
        does C(${flyway:timestamp}) in a repeatable file, at every run.
      - The values of secret placeholders (see O(secret_placeholders)) are masked in every message and
        returned text, the invocation included; the other values stay readable.
    type: dict
    default: {}
  secret_placeholders:
    description:
      - Names of placeholders whose values are secret. Their values, and those of every placeholder whose
        name contains C(password), C(passwd), C(secret), C(token) or C(credential) or ends with C(key)
        (any case), are replaced by C(********) in failure messages, statements, the SQL of the diff,
        findings and the invocation.
      - Password literals written in a migration file (C(PASSWORD '...'), C(password=...) of a connection
        string, the password of a C(postgresql://) URI) are replaced by C(********) in failure messages,
        statements and the SQL of the diff whatever this option says.
    type: list
    elements: str
    default: []
  environment:
    description:
      - Value of C(${flyway:environment}) (Flyway's environment name; Flyway's default is C(default)).
    type: str
    default: default
  working_directory:
    description:
      - Value of C(${flyway:workingDirectory}). Default is the working directory of C(ansible-playbook) on
        the controller (like Flyway's C(user.dir), where the tool was started), or of the module when it runs
        without its action plugin.
    type: str
  return_history:
    description:
      - Return the whole history table in RV(history). Off by default, as the history of a long-lived
        database is most of the result and returning it on every run cost more than the run itself.
        O(command=info) always returns it.
    type: bool
    default: false
  out_of_order:
    description:
      - Apply pending migrations whose version is below the current version. Without it they are
        reported (C(MG-003)) and the run fails.
    type: bool
    default: false
  table:
    description:
      - Name of the history table.
      - At most 57 bytes in UTF-8, so that its constraint C(<table>_pk) and index C(<table>_s_idx) fit in
        PostgreSQL's 63 bytes (NAMEDATALEN - 1) when the table is created; an existing table may have a name
        up to 63 bytes. Longer names, which PostgreSQL would silently truncate, are refused.
    type: str
    default: flyway_schema_history
  schema:
    description:
      - Schema of the history table; created when missing.
    type: str
    default: public
  lint_fail_on:
    description:
      - With O(command=migrate), the pending migrations (placeholders replaced) are first linted with the
        rules of M(dbarch.postgresql.migration_lint), using the real table sizes of the database, in the
        order they run (a table created by an earlier pending migration is known to be empty); their
        findings are returned in RV(findings), in check mode too.
      - When a finding that is not suppressed has this severity or a higher one, the run stops before
        anything is applied (not even the history table is created). V(never) lints without stopping.
      - "Suppress a finding for one statement with a comment in the file that carries a reason, such as
        C(-- migration_lint: ignore ML-006 reason: the table is empty at this point)."
    type: str
    default: high
    choices: [never, info, low, medium, high, critical]
  lint_exclude_rules:
    description: Lint rules (ids or patterns such as C(ML-02*)) not to run.
    type: list
    elements: str
    default: []
  lint:
    description:
      - Lint the pending migrations before applying them (see O(lint_fail_on)). V(false) skips the lint
        entirely (no findings), for example when an earlier check-mode run already linted the same files.
        O(lint_fail_on=never) still lints and returns the findings, without stopping.
    type: bool
    default: true
  lock_timeout:
    description:
      - C(lock_timeout) of every migration statement (C(SET LOCAL) in each migration's transaction),
        a PostgreSQL duration such as C(5s), so a migration waiting for a lock does not stall the
        traffic queued behind it. Also set for the session.
    type: str
    default: 5s
  lock_retries:
    description:
      - How many times a migration that failed on a lock (SQLSTATE 55P03) is run again, as a whole.
    type: int
    default: 3
  lock_retry_delay:
    description:
      - Seconds to wait before the first retry; the wait doubles at each retry.
    type: float
    default: 1.0
  lock_wait_timeout:
    description:
      - Seconds to wait for another run on the same history table to finish before failing.
    type: int
    default: 300
  baseline_version:
    description:
      - Version that O(command=baseline) records. Migrations up to it are never applied.
    type: str
    default: "1"
  baseline_description:
    description:
      - Description of the baseline row.
    type: str
    default: << Flyway Baseline >>
  _files:
    description:
      - Internal, set by the action plugin; do not set it. The migration files read on the controller,
        each a dict with C(name) (path relative to O(path)) and C(content) (the file's text).
      - When absent (the module run without its action plugin), the files are read from O(path) on the
        host that runs the module.
    type: list
    elements: dict
extends_documentation_fragment:
  - dbarch.postgresql.connection
attributes:
  check_mode:
    support: full
    description: Reports the pending migrations in order and the SQL that would run; runs nothing, not even
      the creation of the history table.
  diff_mode:
    support: full
    description: The current version before and after, and the SQL that runs (or would run).
  action:
    support: full
    description: The action plugin reads the migration files on the controller.
notes:
  - Needs the Python package pglast on the host that runs the module.
  - Statements run outside a transaction that fail on a lock are retried one by one.
  - Checksums follow Flyway's ChecksumCalculator (CRC-32 of the UTF-8 bytes of each line, line
    terminators removed, a leading byte order mark dropped, as a signed 32-bit integer).
seealso:
  - name: Flyway migration naming
    description: The file names and history table this module is compatible with.
    link: https://documentation.red-gate.com/flyway
"""

EXAMPLES = r"""
- name: Apply the migrations of the project
  dbarch.postgresql.migrate:
    path: migrations/shop
    login_db: shop
    placeholders:
      app_role: shop_app
      app_password: "{{ vault_shop_app_password }}"  # masked: the name contains password
      vault_path: "{{ shop_vault_path }}"
    secret_placeholders: [vault_path]
  register: migration

- name: Migrate up to version 5, or the highest version below it when there is no 5
  dbarch.postgresql.migrate:
    path: migrations/shop
    login_db: shop
    target: "5?"
    return_history: true

- name: Show what would run, without running it
  dbarch.postgresql.migrate:
    path: migrations/shop
    login_db: shop
  check_mode: true
  diff: true

- name: Fail when an applied migration was edited
  dbarch.postgresql.migrate:
    path: migrations/shop
    login_db: shop
    command: validate

- name: Start managing a database that already has the schema of version 5
  dbarch.postgresql.migrate:
    path: migrations/shop
    login_db: shop
    command: baseline
    baseline_version: "5"

- name: Roll back the latest migration with its undo file
  dbarch.postgresql.migrate:
    path: migrations/shop
    login_db: shop
    command: undo
"""

RETURN = r"""
current_version:
  description: Version of the database after the run (the highest applied version); null when none.
  returned: always
  type: str
  sample: "1.10"
applied:
  description:
    - Migrations this run applied (or undid), in order, each with C(version), C(description), C(type)
      (C(SQL) or C(UNDO_SQL)), C(script), C(checksum), C(execution_time) (milliseconds), C(installed_rank)
      and C(installed_on).
  returned: always
  type: list
  elements: dict
  sample:
    - {version: "2", description: add orders, type: SQL, script: V2__add_orders.sql, checksum: -1039259818,
       execution_time: 12, installed_rank: 2, installed_on: "2026-01-01 10:00:00.123456"}
pending:
  description:
    - Migrations still to apply (with O(command=undo) in check mode, the undo files that would run), each
      with C(version), C(description), C(type), C(script) and C(checksum). Empty after a successful migrate.
  returned: always
  type: list
  elements: dict
history:
  description: Rows of the history table after the run, in installed_rank order.
  returned: when O(return_history=true), and with O(command=info)
  type: list
  elements: dict
failed_migration:
  description:
    - The migration that failed, with C(version), C(description), C(script), C(line), C(sqlstate) and
      C(recorded_as_failed) (true when it ran outside a transaction and its history row stays with
      C(success=false)). The migrations applied before it are in RV(applied) and C(changed) is true.
  returned: when a migration failed while applying
  type: dict
  sample: {version: "4", description: four, script: V4__four.sql, line: 1, sqlstate: 42P01,
           recorded_as_failed: false}
findings:
  description:
    - Disagreements between history and files (O(command=validate) and O(command=info)), one per file,
      with C(rule) (C(MG-001) to C(MG-005)), C(severity), C(object) (the file), C(message), C(fix),
      C(evidence) and C(location).
  returned: always
  type: list
  elements: dict
repairs:
  description: What O(command=repair) did (or would do in check mode).
  returned: when command is repair
  type: list
  elements: str
retries:
  description: How many times a migration was run again after a lock timeout.
  returned: always
  type: int
queries:
  description: One line per migration that ran (file, statements, transaction or not), not the full SQL.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.ansible_module import DbarchModule
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import findings as fnd
from ansible_collections.dbarch.postgresql.plugins.module_utils.migrations import migrations as mg
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError


class _LazyLint:
    """migration_lint, imported on first use: a run with nothing pending never loads (nor
    compiles, from the module's zip) the lint, which was most of a no-op run's import time."""

    def __getattr__(self, name):
        from ansible_collections.dbarch.postgresql.plugins.module_utils.migrations import (  # noqa: PLC0415
            migration_lint,
        )

        return getattr(migration_lint, name)


ml = _LazyLint()


def local_files(module, folder):
    """(name, text) of the migration files under folder, when the action plugin did not send them."""
    import os  # noqa: PLC0415 - only on this fallback path

    if not os.path.isdir(folder):
        module.fail_json(msg="path %s: no such folder on the host that runs the module." % folder)
    files = []
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            if name.endswith(".sql") and name[:1] in ("V", "U", "R"):
                full = os.path.join(root, name)
                with open(full, "rb") as handle:
                    raw = handle.read()
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError:
                    module.fail_json(msg="%s is not UTF-8: migration files must be UTF-8." % full)
                files.append((os.path.relpath(full, folder).replace(os.sep, "/"), text))
    return files


ARGUMENT_SPEC = dict(
    lock_timeout=dict(type="str", default="5s"),
    path=dict(type="path", required=True),
    command=dict(type="str", default="migrate", choices=list(mg.COMMANDS)),
    target=dict(type="str"),
    placeholders=dict(type="dict", default={}),
    out_of_order=dict(type="bool", default=False),
    table=dict(type="str", default=mg.DEFAULT_TABLE),
    schema=dict(type="str", default=mg.DEFAULT_SCHEMA),
    lock_retries=dict(type="int", default=3),
    lock_retry_delay=dict(type="float", default=1.0),
    lock_wait_timeout=dict(type="int", default=300),
    baseline_version=dict(type="str", default="1"),
    baseline_description=dict(type="str", default=mg.BASELINE_DESCRIPTION),
    lint_fail_on=dict(type="str", default="high", choices=list(fnd.FAIL_ON_CHOICES)),
    lint_exclude_rules=dict(type="list", elements="str", default=[]),
    lint=dict(type="bool", default=True),
    secret_placeholders=dict(type="list", elements="str", default=[], no_log=False),
    fail_on_missing_target=dict(type="bool", default=True),
    environment=dict(type="str", default=mg.DEFAULT_ENVIRONMENT),
    working_directory=dict(type="str"),
    return_history=dict(type="bool", default=False),
    _files=dict(type="list", elements="dict"),
)


def main():
    module = DbarchModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    # The values of secret placeholders are masked by Ansible everywhere in the result (invocation
    # included) and by the engine in its messages; the other placeholder values stay readable.
    secrets = mg.secret_values(p["placeholders"], p["secret_placeholders"])
    module.no_log_values.update(secrets)
    # The files were sent by the action plugin; echoing them back in invocation doubled the result.
    invocation = dict(module_args=dict((k, v) for k, v in p.items() if k != "_files"))
    if p["_files"] is not None:
        files = [(f["name"], f["content"]) for f in p["_files"]]
    else:
        files = local_files(module, p["path"])
    if p["lock_retries"] < 0 or p["lock_wait_timeout"] < 0 or p["lock_retry_delay"] < 0:
        module.fail_json(msg="lock_retries, lock_retry_delay and lock_wait_timeout must not be negative.")
    session = module.connect()
    linted = []

    def lint(pending):
        """migration_lint on the pending migrations, with the database's table sizes."""
        sizes, checks = ml.database_facts(session)
        # in order, with what earlier pending migrations create carried to the later ones
        linted.extend(
            ml.lint_run(
                migrations=pending,
                table_sizes=sizes,
                not_null_checks=checks,
                exclude_rules=p["lint_exclude_rules"],
            )
        )
        failing = fnd.gate(linted, p["lint_fail_on"])
        if failing:
            message = fnd.gate_message(failing, p["lint_fail_on"])
            raise mg.MigrationError(
                "Lint of the pending migrations: %s Nothing was applied." % message,
                script=(failing[0].location or {}).get("file"),
                line=(failing[0].location or {}).get("line"),
            )
        return linted

    try:
        result = mg.run(
            session,
            p["command"],
            files,
            baseline_version=p["baseline_version"],
            baseline_description=p["baseline_description"],
            schema=p["schema"],
            table=p["table"],
            placeholders=p["placeholders"],
            target=p["target"],
            out_of_order=p["out_of_order"],
            lock_timeout=p["lock_timeout"],
            lock_retries=p["lock_retries"],
            lock_retry_delay=p["lock_retry_delay"],
            lock_wait_timeout=p["lock_wait_timeout"],
            check_mode=module.check_mode,
            preview=module._diff,
            lint=lint if p["command"] == "migrate" and p["lint"] else None,
            secret_placeholders=p["secret_placeholders"],
            fail_on_missing_target=p["fail_on_missing_target"],
            environment=p["environment"],
            working_directory=p["working_directory"],
            return_history=p["return_history"],
        )
    except DbarchError as exc:
        # fail_from masks the secrets (no_log_values) in the message and adds the queries that ran
        extra = dict(sqlstate=exc.sqlstate, findings=[f.to_dict() for f in linted])
        if isinstance(exc, mg.MigrationError):
            extra.update(script=exc.script, line=exc.line)
        # What the run did before it failed: migrations applied (changed), the one that failed.
        partial = getattr(exc, "partial", None)
        if partial:
            extra.update(partial)
            extra["queries"] = extra.pop("log", [])
        module.fail_from(exc, invocation=invocation, **mg.mask(extra, secrets))
    finally:
        session.close()

    found = [f.to_dict() for f in result.pop("findings", [])]
    preview = result.pop("preview", None)
    before = result.pop("before_version", result["current_version"])
    after = result.pop("target_version", result["current_version"])
    result["findings"] = found
    result["queries"] = result.pop("log", [])
    if module._diff and p["command"] in ("migrate", "undo"):
        result["diff"] = dict(
            before_header="version",
            after_header="version",
            before="version: %s\n" % (before or "none"),
            after="version: %s\n%s" % (after or "none", "\n" + preview + "\n" if preview else ""),
        )
    result = mg.mask(result, secrets)
    result["invocation"] = invocation
    if p["command"] == "validate" and found:
        module.fail_json(
            msg="Validation of %s.%s failed: %s"
            % (p["schema"], p["table"], " ".join(f["message"] for f in found)),
            **result,
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
