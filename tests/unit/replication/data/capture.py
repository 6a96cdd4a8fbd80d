# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Regenerate the pg_waldump samples the waldump parser's unit tests read (real output, per major).

    PYTHONPATH=.collections .venv/bin/python tests/unit/replication/data/capture.py 14 15 16 17 18

For each major: a throw-away cluster, a workload of known transactions (committed, aborted,
subtransactions, a rolled-back savepoint, more than 64 subtransactions (an ASSIGNMENT record),
two-phase commit, COPY, a toasted value, DDL), then ``pg_waldump`` from the LSN before the workload
to the end of WAL. Writes waldump_pg<major>.txt (stdout), .stderr (exit code and stderr) and
.json (the xids and relfilenodes the test expects).
"""

import io
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "integration"))

import harness  # noqa: E402
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import localcluster as lc  # noqa: E402


def txid(cur):
    cur.execute("SELECT txid_current()")
    return cur.fetchone()[0]


def workload(pg):
    pg.query("CREATE TABLE public.lost_rows (id int PRIMARY KEY, note text)")
    pg.query('CREATE SCHEMA app; CREATE TABLE app."Mixed Case" (id bigserial PRIMARY KEY, v text)')
    pg.query("CHECKPOINT")
    start = pg.query("SELECT pg_current_wal_lsn()")[0][0]
    conn = pg.connect(autocommit=False)
    cur = conn.cursor()
    cur.execute("SET synchronous_commit = on")
    xids = {}
    cur.execute("INSERT INTO lost_rows VALUES (1, 'one')")
    xids["committed"] = txid(cur)
    conn.commit()
    cur.execute("INSERT INTO lost_rows VALUES (2, 'aborted')")
    xids["aborted"] = txid(cur)
    conn.rollback()
    cur.execute("INSERT INTO lost_rows VALUES (3, 'sub')")
    xids["with_subxact"] = txid(cur)
    cur.execute("SAVEPOINT a")
    cur.execute("INSERT INTO app.\"Mixed Case\"(v) VALUES ('x')")
    cur.execute("RELEASE a")
    cur.execute("SAVEPOINT b")
    cur.execute("UPDATE lost_rows SET note = 'rolled back' WHERE id = 1")
    cur.execute("ROLLBACK TO b")
    conn.commit()
    cur.execute("DELETE FROM lost_rows WHERE id = 3")
    xids["delete"] = txid(cur)
    conn.commit()
    cur.execute("INSERT INTO lost_rows VALUES (4, '')")
    xids["many_subxacts"] = txid(cur)
    for i in range(70):
        cur.execute("SAVEPOINT s%d" % i)
        cur.execute("INSERT INTO app.\"Mixed Case\"(v) VALUES ('s%d')" % i)
    conn.commit()
    cur.copy_from(io.StringIO("".join("%d\tcopied %d\n" % (g, g) for g in range(10, 41))), "lost_rows")
    xids["bulk"] = txid(cur)
    conn.commit()
    cur.execute(
        "INSERT INTO lost_rows SELECT 50, string_agg(md5(random()::text), '') FROM generate_series(1, 400)"
    )
    xids["toast"] = txid(cur)
    conn.commit()
    cur.execute("INSERT INTO lost_rows VALUES (60, 'prepared')")
    xids["prepared"] = txid(cur)
    cur.execute("PREPARE TRANSACTION 'p1'")
    conn.commit()
    conn.autocommit = True
    cur.execute("COMMIT PREPARED 'p1'")
    cur.execute("CREATE TABLE later (a int)")
    cur.execute("DROP TABLE later")
    conn.autocommit = False
    cur.execute("INSERT INTO lost_rows VALUES (70, 'last')")
    xids["last"] = txid(cur)
    conn.commit()
    conn.close()
    rels = {
        name: pg.query("SELECT pg_relation_filenode(%s::regclass)", (name,))[0][0]
        for name in ("public.lost_rows", "public.lost_rows_pkey", 'app."Mixed Case"', 'app."Mixed Case_pkey"')
    }
    rels["toast_of_lost_rows"] = pg.query(
        "SELECT pg_relation_filenode(reltoastrelid) FROM pg_class WHERE oid = 'public.lost_rows'::regclass"
    )[0][0]
    dboid = pg.query("SELECT oid FROM pg_database WHERE datname = 'postgres'")[0][0]
    return start, xids, rels, dboid


def main(majors):
    for major in majors:
        pg = harness.start_cluster(
            major, settings={"wal_log_hints": "on", "full_page_writes": "on", "max_prepared_transactions": 5}
        )
        try:
            start, xids, rels, dboid = workload(pg)
            tli = pg.query("SELECT timeline_id FROM pg_control_checkpoint()")[0][0]
            env = dict(os.environ, TZ="UTC", **lc.library_env(pg.bindir))
            argv = [
                "runuser",
                "-u",
                "postgres",
                "--",
                os.path.join(pg.bindir, "pg_waldump"),
                "-p",
                os.path.join(pg.data_dir, "pg_wal"),
                "-t",
                str(tli),
                "-s",
                start,
            ]
            res = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
            base = os.path.join(HERE, "waldump_pg%d" % major)
            with open(base + ".txt", "w") as out:
                out.write(res.stdout)
            with open(base + ".stderr", "w") as out:
                out.write("rc=%d\n%s" % (res.returncode, res.stderr))
            with open(base + ".json", "w") as out:
                json.dump(
                    {"start": start, "timeline": tli, "xids": xids, "relfilenodes": rels, "dboid": dboid},
                    out,
                    indent=2,
                    sort_keys=True,
                )
                out.write("\n")
        finally:
            pg.stop()


if __name__ == "__main__":
    main([int(m) for m in sys.argv[1:]] or [14, 15, 16, 17, 18])
