# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Index advice bench: recall and precision of index_advice_info against the pghero heuristic.

A generated workload on tables with data, where the best index of every slow query is known
(the ground truth), plus decoy queries that no index helps (a primary key lookup, a filter
keeping half the table, a full count). Both advisers see the same workload:

- dbarch: ``index_advice.advise()`` in-process, with hypopg when the server has it (PostgreSQL 15
  from Debian), and again without it (the heuristic fallback);
- pghero heuristic, implemented here after its guide: for each slow query on a single table,
  an index on the columns of its equality predicates (most distinct values first), unless the
  predicates keep many rows or an index already leads with those columns.

A proposal is right when it names the table of a known index, the same equality columns (in
any order) followed by the same range/sort columns in order, and the same partial predicate.
Recall = right proposals / known indexes; precision = right proposals / all proposals.
Counts, not timings: the numbers do not depend on the machine.
"""

import argparse
import os
import re
import sys

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, BENCH)

import common  # noqa: E402
import pglast  # noqa: E402

from ansible_collections.dbarch.postgresql.plugins.module_utils.query import index_advice as ia  # noqa: E402
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg  # noqa: E402

OUT_DIR = common.OUT_DIR
ROWS = 20000

# Query shapes: (SQL with {t}, the known best index (eq columns, tail columns, where) or None).
SHAPES = [
    ("SELECT * FROM {t} WHERE a = $1", (("a",), (), None)),
    ("SELECT * FROM {t} WHERE e = $1 AND a = $2", (("a", "e"), (), None)),
    ("SELECT * FROM {t} WHERE e = $1 AND c > $2", (("e",), ("c",), None)),
    ("SELECT id FROM {t} WHERE d = 'rare' ORDER BY c DESC LIMIT 10", ((), ("c DESC",), "d = 'rare'")),
    ("SELECT * FROM {t} WHERE e = $1 ORDER BY c LIMIT 20", (("e",), ("c",), None)),
    (
        "SELECT p.name, x.c FROM {t}_parent p JOIN {t} x ON x.parent_id = p.id WHERE p.id = $1",
        (("parent_id",), (), None),
    ),
    # An IN list: dbarch leaves "= ANY (...)" alone today, pghero's rule does not take it either.
    ("SELECT * FROM {t} WHERE a IN ($1, $2, $3)", (("a",), (), None)),
]
DECOYS = [
    "SELECT * FROM {t} WHERE id = $1",
    "SELECT count(*) FROM {t} WHERE b = $1",
    "SELECT count(*) FROM {t}",
]


def build(conn, tables):
    """Create the tables and the workload; returns (workload, truth)."""
    workload, truth = [], []
    with conn.cursor() as cur:
        for n in range(tables):
            shape_sql, best = SHAPES[n % len(SHAPES)]
            t = "t%02d" % n
            cur.execute("DROP TABLE IF EXISTS %s, %s_parent CASCADE" % (t, t))
            cur.execute("CREATE TABLE %s_parent (id int PRIMARY KEY, name text NOT NULL)" % t)
            cur.execute("INSERT INTO %s_parent SELECT g, 'p' || g FROM generate_series(1, 2000) g" % t)
            cur.execute(
                "CREATE TABLE %s (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES %s_parent (id), "
                "a int NOT NULL, b int NOT NULL, c timestamptz NOT NULL, d text NOT NULL, e int NOT NULL, "
                "filler text NOT NULL)" % (t, t)
            )
            cur.execute(
                "INSERT INTO {t} SELECT g, 1 + g % 2000, g * 7 % {rows}, g % 2, "
                "timestamptz '2024-01-01' + g * interval '1 minute', "
                "CASE WHEN g % 100 = 0 THEN 'rare' ELSE 'common' || (g % 3) END, g % 500, md5(g::text) "
                "FROM generate_series(1, {rows}) g".format(t=t, rows=ROWS)
            )
            # The parent key of the join shape is the only FK; the others get their FK index.
            if n % len(SHAPES) != 5:
                cur.execute("CREATE INDEX ON %s (parent_id)" % t)
            cur.execute("ANALYZE %s, %s_parent" % (t, t))
            workload.append(
                dict(name="%s shape %d" % (t, n % len(SHAPES)), sql=shape_sql.format(t=t), weight=1)
            )
            eq, tail, where = best
            truth.append(("public.%s" % t, frozenset(eq), tuple(tail), where))
            decoy = DECOYS[n % len(DECOYS)]
            workload.append(dict(name="%s decoy" % t, sql=decoy.format(t=t), weight=1))
    return workload, truth


def _norm_where(where):
    if not where:
        return None
    return re.sub(r"::[a-z ]+", "", where).replace("(", "").replace(")", "").strip()


def key_of(table, columns, where, eq_count):
    cols = list(columns)
    return (table, frozenset(cols[:eq_count]), tuple(cols[eq_count:]), _norm_where(where))


def score(proposals, truth):
    """proposals: [(table, eq columns, tail columns, where)] -> dict(recall, precision, ...)."""
    truth_set = set(truth)
    right = [p for p in proposals if p in truth_set]
    return dict(
        known=len(truth_set),
        proposed=len(proposals),
        right=len(set(right)),
        recall=round(len(set(right)) / float(len(truth_set)), 3) if truth_set else None,
        precision=round(len(right) / float(len(proposals)), 3) if proposals else None,
    )


def dbarch_proposals(session, workload):
    out = []
    result = ia.advise(session, queries=workload, limit=0)
    for p in result["proposals"]:
        # equality columns: those of the proposal that the statement compares with =
        eq = 0
        texts = " ".join(q["sql"] for q in p["queries"])
        for col in p["columns"]:
            name = col.split(" ")[0]
            if re.search(r"\b%s\s*=\s*(\$\d|'|\d|p\.id)" % re.escape(name), texts) or re.search(
                r"\.%s\s*=" % re.escape(name), texts
            ):
                eq += 1
            else:
                break
        out.append(key_of(p["table"], p["columns"], p["where"], eq))
    return out, result["summary"]


def pghero_proposals(conn, workload):
    """The pghero heuristic: equality columns of single-table queries, most distinct first."""
    out = []
    with conn.cursor() as cur:
        for q in workload:
            stmt = pglast.parse_sql(q["sql"])[0].stmt
            if type(stmt).__name__ != "SelectStmt" or len(stmt.fromClause or ()) != 1:
                continue
            rel = stmt.fromClause[0]
            if type(rel).__name__ != "RangeVar":
                continue  # joins are out of the heuristic's reach
            eq = _equality_columns(stmt.whereClause)
            if not eq:
                continue
            cur.execute(
                "SELECT s.attname, s.n_distinct, c.reltuples FROM pg_stats s "
                "JOIN pg_class c ON c.relname = s.tablename AND c.relnamespace = 'public'::regnamespace "
                "WHERE s.schemaname = 'public' AND s.tablename = %s AND s.attname = ANY(%s)",
                (rel.relname, list(eq)),
            )
            stats = dict((r[0], (r[1], r[2])) for r in cur.fetchall())
            rows = max((v[1] for v in stats.values()), default=0)
            distinct = dict((c, (-nd * rows if nd < 0 else nd)) for c, (nd, _r) in stats.items())
            selectivity = 1.0
            for c in eq:
                selectivity /= max(distinct.get(c, 1.0), 1.0)
            if rows < 1000 or selectivity > 0.1:
                continue  # the predicates keep many rows: a scan is as good
            cur.execute(
                "SELECT array_agg(a.attname ORDER BY k.n) FROM pg_index x "
                "JOIN pg_class t ON t.oid = x.indrelid, unnest(x.indkey) WITH ORDINALITY k(attnum, n) "
                "JOIN pg_attribute a ON a.attnum = k.attnum "
                "WHERE t.relname = %s AND a.attrelid = t.oid GROUP BY x.indexrelid",
                (rel.relname,),
            )
            if any(set(r[0][: len(eq)]) == set(eq) for r in cur.fetchall()):
                continue
            cols = sorted(eq, key=lambda c: -distinct.get(c, 0))
            out.append(key_of("public.%s" % rel.relname, cols, None, len(cols)))
    return out


def _equality_columns(where):
    if where is None:
        return []
    name = type(where).__name__
    if name == "BoolExpr":
        if where.boolop != pglast.enums.BoolExprType.AND_EXPR:
            return []
        out = []
        for arg in where.args:
            out += _equality_columns(arg)
        return out
    if name == "A_Expr" and [n.sval for n in where.name] == ["="]:
        for side, other in ((where.lexpr, where.rexpr), (where.rexpr, where.lexpr)):
            if type(side).__name__ == "ColumnRef" and type(other).__name__ in ("ParamRef", "A_Const"):
                return [side.fields[-1].sval]
    return []


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    ap.add_argument(
        "--tables",
        type=int,
        default=14,
        help="tables, one known index each (default 14: two per query shape)",
    )
    ap.add_argument("--version", type=int, default=15, help="PostgreSQL major (15 has hypopg from Debian)")
    ap.add_argument("--out", default=os.path.join(OUT_DIR, "index_advice.json"))
    opts = ap.parse_args(argv)
    with common.ThrowawayCluster(
        opts.version, prefix="dbarch-iabench-", settings=dict(fsync=False)
    ) as cluster:
        params = dict(
            login_host="127.0.0.1",
            login_port=cluster.port,
            login_user="postgres",
            login_password=cluster.password,
        )
        conn = cluster.connect()
        common.log("generating %d tables of %d rows" % (opts.tables, ROWS))
        workload, truth = build(conn, opts.tables)
        results = {}
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_available_extensions WHERE name = 'hypopg'")
            has_hypopg = cur.fetchone()[0] > 0
        session = pg.connect(dict(params, login_db="postgres"), "bench")
        try:
            if has_hypopg:
                with conn.cursor() as cur:
                    cur.execute("CREATE EXTENSION IF NOT EXISTS hypopg")
                props, _s = dbarch_proposals(session, workload)
                results["dbarch (hypopg)"] = score(props, truth)
                with conn.cursor() as cur:
                    cur.execute("DROP EXTENSION hypopg")
            props, _s = dbarch_proposals(session, workload)
            results["dbarch (heuristic)"] = score(props, truth)
        finally:
            session.close()
        results["pghero heuristic"] = score(pghero_proposals(conn, workload), truth)
        conn.close()
    print("%-20s %6s %9s %6s %7s %9s" % ("adviser", "known", "proposed", "right", "recall", "precision"))
    for name, r in results.items():
        print(
            "%-20s %6d %9d %6d %7s %9s"
            % (name, r["known"], r["proposed"], r["right"], r["recall"], r["precision"])
        )
    common.write_json(opts.out, dict(version=opts.version, tables=opts.tables, rows=ROWS, results=results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
