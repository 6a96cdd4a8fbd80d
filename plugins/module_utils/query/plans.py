# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rules on an EXPLAIN (FORMAT JSON) plan: pure functions, no database, no Ansible.

``analyze(doc)`` takes one element of the JSON array EXPLAIN returns (the dict with
``Plan``, ``Planning Time``, ``Execution Time``, ``JIT`` ...) and returns a list of
``findings.Finding``. Rules that need actual row counts only fire on plans made with
ANALYZE; ``rules_not_run(doc)`` names them for a plan made without it.

Every number in EXPLAIN's per-node output (Actual Rows, Rows Removed by Filter) is a
per-loop average, except Heap Fetches and the buffer counters, which are totals.
``summary()`` and ``compare()`` give the timing, buffers and plan-shape differences.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.findings import Finding

DEFAULT_THRESHOLDS = dict(
    # Seq Scan: rows the filter threw away (all loops) at least this many ...
    seq_scan_min_removed=1000,
    # ... and at least this many times the rows it returned.
    seq_scan_selectivity=10,
    # Estimate error: actual/planned (or planned/actual) rows per loop over this ratio ...
    estimate_ratio=10,
    # ... when the larger of the two is at least this many rows (small counts are noise).
    estimate_min_rows=100,
    # Nested Loop: inner side executed at least this many times.
    nested_loop_loops=1000,
    # SubPlan executed at least this many times (once per outer row).
    subplan_loops=100,
    # Index Only Scan: heap fetches at least this share of the rows returned ...
    heap_fetch_share=0.1,
    # ... and at least this many.
    heap_fetch_min=100,
    # JIT: its time at least this share of the execution time ...
    jit_share=0.2,
    # ... and at least this many milliseconds.
    jit_min_ms=10.0,
)

ANALYZE_RULES = (
    "QP-SCAN-001",
    "QP-EST-001",
    "QP-LOOP-001",
    "QP-SUBPLAN-001",
    "QP-BITMAP-001",
    "QP-VM-001",
    "QP-PAR-001",
    "QP-JIT-001",
)

REFERENCE = "https://www.postgresql.org/docs/current/using-explain.html"


class PlanError(DbarchError, ValueError):
    pass


def thresholds(overrides=None):
    """DEFAULT_THRESHOLDS with ``overrides`` applied; an unknown key is refused."""
    out = dict(DEFAULT_THRESHOLDS)
    for key, value in (overrides or {}).items():
        if key not in out:
            raise PlanError(
                "thresholds: unknown key %r; valid keys: %s." % (key, ", ".join(sorted(DEFAULT_THRESHOLDS)))
            )
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            raise PlanError("thresholds.%s must be a number, got %r." % (key, value)) from None
    return out


def document(explain_output):
    """The plan document from what EXPLAIN (FORMAT JSON) returned (list, or its one element)."""
    doc = explain_output
    if isinstance(doc, list):
        if len(doc) != 1:
            raise PlanError("An EXPLAIN JSON result holds one plan; got %d." % len(doc))
        doc = doc[0]
    if not isinstance(doc, dict) or not isinstance(doc.get("Plan"), dict):
        raise PlanError("Not an EXPLAIN (FORMAT JSON) result: no 'Plan' object.")
    return doc


def nodes(doc):
    """(node id, node, parent) for every plan node, depth first; ids count from 1."""
    out = []

    def walk(node, parent):
        out.append((len(out) + 1, node, parent))
        for child in node.get("Plans") or ():
            walk(child, node)

    walk(doc["Plan"], None)
    return out


def is_analyzed(doc):
    return "Actual Loops" in doc["Plan"]


def _num(node, key, default=0.0):
    value = node.get(key)
    if value is None:
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def relation(node):
    """schema.table of a scan node (Schema is there with VERBOSE), or None."""
    rel = node.get("Relation Name")
    if not rel:
        return None
    schema = node.get("Schema")
    return (
        "%s.%s" % (pg.quote_ident_text(schema), pg.quote_ident_text(rel))
        if schema
        else pg.quote_ident_text(rel)
    )


def label(node_id, node):
    """How a finding names a node: 'Seq Scan on public.orders o (node 3)'."""
    text = node.get("Node Type", "?")
    rel = relation(node)
    if rel:
        text += " on %s" % rel
        alias = node.get("Alias")
        if alias and alias != node.get("Relation Name"):
            text += " %s" % alias
    if node.get("Subplan Name"):
        text += " [%s]" % node["Subplan Name"]
    return "%s (node %d)" % (text, node_id)


def _round(value):
    return round(float(value), 2)


def _filter_columns(text, alias):
    """Column names compared in a Filter, such as (o.customer_id = 42) -> ['customer_id']."""
    out = []
    word = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
    for m in re.finditer(r"(?:(%s)\.)?(%s)\s*(?:=|<>|<=|>=|<|>|~~|IS\b|ANY\b)" % (word, word), text or ""):
        qual, col = m.group(1), m.group(2)
        if qual and alias and qual.strip('"') != alias:
            continue
        col = col[1:-1].replace('""', '"') if col.startswith('"') else col
        if col.upper() in ("AND", "OR", "NOT") or col in out:
            continue
        out.append(col)
    return out


# -- the rules -------------------------------------------------------------------------
def _seq_scan(nid, node, parent, t, doc):
    if node.get("Node Type") != "Seq Scan" or "Rows Removed by Filter" not in node:
        return None
    loops = max(_num(node, "Actual Loops", 1), 1)
    removed = _num(node, "Rows Removed by Filter") * loops
    returned = _num(node, "Actual Rows") * loops
    if removed < t["seq_scan_min_removed"] or removed < t["seq_scan_selectivity"] * max(returned, 1):
        return None
    rel = relation(node)
    cols = _filter_columns(node.get("Filter"), node.get("Alias"))
    if cols:
        fix = "CREATE INDEX CONCURRENTLY ON %s (%s);" % (rel, ", ".join(pg.quote_ident_text(c) for c in cols))
    else:
        fix = "Create an index on %s that matches the filter %s." % (rel, node.get("Filter"))
    return Finding(
        rule="QP-SCAN-001",
        title="Sequential scan with a selective filter",
        severity="high" if removed >= 100 * t["seq_scan_min_removed"] else "medium",
        object=rel,
        message="%s reads every row of %s and its filter %s throws away %d rows to return %d."
        % (label(nid, node), rel, node.get("Filter"), removed, returned),
        why="The whole table is read for a few rows; the cost grows with the table, not with the result. "
        "A missing index on a foreign key used in a join shows up this way.",
        fix=fix,
        evidence=dict(
            node=label(nid, node),
            filter=node.get("Filter"),
            rows_removed_by_filter=int(removed),
            rows_returned=int(returned),
            loops=int(loops),
            columns=cols,
        ),
        references=[REFERENCE],
    )


def _estimate(nid, node, parent, t, doc):
    if "Actual Rows" not in node or not _num(node, "Actual Loops"):
        return None
    planned = _num(node, "Plan Rows")
    actual = _num(node, "Actual Rows")
    big, small = max(planned, actual), min(planned, actual)
    if big < t["estimate_min_rows"] or big < t["estimate_ratio"] * max(small, 1):
        return None
    ratio = big / max(small, 1)
    rel = relation(node)
    direction = "under" if actual > planned else "over"
    return Finding(
        rule="QP-EST-001",
        title="Row estimate off by more than %gx" % t["estimate_ratio"],
        severity="medium" if ratio >= 100 else "low",
        object=rel or label(nid, node),
        message="%s: the planner expected %d rows per loop, %d came (%sestimated %.0fx)."
        % (label(nid, node), planned, actual, direction, ratio),
        why="Plans are chosen from estimates: a wrong row count picks the wrong join method, "
        "join order or memory size.",
        fix=(
            "ANALYZE %s; raise the statistics target of the filtered columns "
            "(ALTER TABLE ... ALTER COLUMN ... SET STATISTICS 1000) or create extended statistics "
            "(CREATE STATISTICS) for correlated columns." % rel
            if rel
            else "ANALYZE the tables below this node; consider CREATE STATISTICS for correlated columns."
        ),
        evidence=dict(
            node=label(nid, node),
            plan_rows=planned,
            actual_rows=actual,
            loops=int(_num(node, "Actual Loops")),
            ratio=_round(ratio),
        ),
        references=["https://www.postgresql.org/docs/current/planner-stats.html"],
    )


def _nested_loop(nid, node, parent, t, doc):
    if node.get("Node Type") != "Nested Loop":
        return None
    inner = [c for c in node.get("Plans") or () if c.get("Parent Relationship") == "Inner"]
    if not inner or "Actual Loops" not in inner[0]:
        return None
    loops = _num(inner[0], "Actual Loops")
    if loops < t["nested_loop_loops"]:
        return None
    inner_scans = sorted({n.get("Node Type") for _i, n, _p in nodes(dict(Plan=inner[0]))})
    seq = "Seq Scan" in inner_scans
    return Finding(
        rule="QP-LOOP-001",
        title="Nested loop with many inner iterations",
        severity="high" if seq else "low",
        object=relation(inner[0]) or label(nid, node),
        message="%s runs its inner side (%s) %d times%s."
        % (label(nid, node), inner[0].get("Node Type"), loops, ", each a sequential scan" if seq else ""),
        why="The inner side is executed once per outer row; with many outer rows a hash or merge join, "
        "or an index on the inner join key, is usually cheaper.",
        fix="Index the join key of the inner table; refresh statistics (ANALYZE) if the outer row count "
        "was underestimated so the planner can choose a hash join.",
        evidence=dict(node=label(nid, node), inner_loops=int(loops), inner_node_types=inner_scans),
        references=[REFERENCE],
    )


def _subplan(nid, node, parent, t, doc):
    if node.get("Parent Relationship") != "SubPlan" or "Actual Loops" not in node:
        return None
    loops = _num(node, "Actual Loops")
    if loops < t["subplan_loops"]:
        return None
    return Finding(
        rule="QP-SUBPLAN-001",
        title="Subquery executed once per row",
        severity="high" if loops >= 10 * t["subplan_loops"] else "medium",
        object=relation(node) or label(nid, node),
        message="%s (a correlated subquery) ran %d times, once per row of the outer query."
        % (label(nid, node), loops),
        why="A correlated subquery in the SELECT list or WHERE clause is re-executed for every outer row; "
        "the work grows with rows x subquery cost.",
        fix="Rewrite the correlated subquery as a JOIN (with GROUP BY for aggregates) or a "
        "LEFT JOIN LATERAL, so it runs once as a set.",
        evidence=dict(node=label(nid, node), subplan=node.get("Subplan Name"), loops=int(loops)),
        references=["https://www.postgresql.org/docs/current/queries-table-expressions.html"],
    )


def _work_mem_hint(kb):
    """A work_mem value above a spill of ``kb`` kilobytes, rounded up to MB."""
    mb = max(int(kb * 2 // 1024) + 1, 4)
    return "%dMB" % mb


def _sort_spill(nid, node, parent, t, doc):
    method = node.get("Sort Method") or ""
    if node.get("Node Type") not in ("Sort", "Incremental Sort") and "Sort Method" not in node:
        return None
    if "external" not in method and node.get("Sort Space Type") != "Disk":
        return None
    used = _num(node, "Sort Space Used")
    keys = node.get("Sort Key") or []
    return Finding(
        rule="QP-SPILL-001",
        title="Sort spilled to disk",
        severity="medium",
        object=label(nid, node),
        message="%s sorted on disk (%s, %d kB): it did not fit in work_mem."
        % (label(nid, node), method, used),
        why="An external sort writes and reads temporary files; it is many times slower than in memory.",
        fix="Raise work_mem for this session or role only (SET work_mem = '%s'), or create an index "
        "that returns the rows in order (%s)." % (_work_mem_hint(used), ", ".join(keys) or "the sort key"),
        evidence=dict(node=label(nid, node), sort_method=method, space_kb=int(used), sort_key=keys),
        references=["https://www.postgresql.org/docs/current/runtime-config-resource.html#GUC-WORK-MEM"],
    )


def _hash_spill(nid, node, parent, t, doc):
    batches = _num(node, "Hash Batches") or _num(node, "HashAgg Batches")
    disk = _num(node, "Disk Usage")
    if batches <= 1 and disk <= 0:
        return None
    what = "hash table" if "Hash Batches" in node else "hash aggregate"
    mem = _num(node, "Peak Memory Usage")
    return Finding(
        rule="QP-SPILL-002",
        title="Hash spilled to disk",
        severity="medium",
        object=label(nid, node),
        message="%s: the %s did not fit in work_mem and was split into %d batches%s."
        % (label(nid, node), what, batches, " (%d kB on disk)" % disk if disk else ""),
        why="Batches beyond the first are written to temporary files and read back.",
        fix="Raise work_mem (or hash_mem_multiplier) for this session or role only "
        "(SET work_mem = '%s'), or reduce the rows hashed with a more selective filter."
        % _work_mem_hint(max(mem, disk) * max(batches, 1)),
        evidence=dict(
            node=label(nid, node),
            batches=int(batches),
            original_batches=int(_num(node, "Original Hash Batches")) or None,
            peak_memory_kb=int(mem),
            disk_kb=int(disk),
        ),
        references=["https://www.postgresql.org/docs/current/runtime-config-resource.html#GUC-WORK-MEM"],
    )


def _lossy_bitmap(nid, node, parent, t, doc):
    lossy = _num(node, "Lossy Heap Blocks")
    if node.get("Node Type") != "Bitmap Heap Scan" or lossy <= 0:
        return None
    return Finding(
        rule="QP-BITMAP-001",
        title="Lossy bitmap heap scan",
        severity="low",
        object=relation(node) or label(nid, node),
        message="%s: the bitmap did not fit in work_mem; %d heap blocks were lossy and every row in them "
        "was rechecked." % (label(nid, node), lossy),
        why="A lossy bitmap keeps only pages, not rows, so each row of those pages is read and rechecked.",
        fix="Raise work_mem for this session or role (SET work_mem = '64MB'), or make the index condition "
        "more selective.",
        evidence=dict(
            node=label(nid, node),
            lossy_heap_blocks=int(lossy),
            exact_heap_blocks=int(_num(node, "Exact Heap Blocks")),
            rows_removed_by_recheck=int(_num(node, "Rows Removed by Index Recheck")),
        ),
        references=[REFERENCE],
    )


def _heap_fetches(nid, node, parent, t, doc):
    if node.get("Node Type") != "Index Only Scan" or "Heap Fetches" not in node:
        return None
    fetches = _num(node, "Heap Fetches")
    rows = _num(node, "Actual Rows") * max(_num(node, "Actual Loops", 1), 1)
    if fetches < t["heap_fetch_min"] or fetches < t["heap_fetch_share"] * max(rows, 1):
        return None
    rel = relation(node)
    return Finding(
        rule="QP-VM-001",
        title="Index-only scan fetching heap pages",
        severity="low",
        object=rel or label(nid, node),
        message="%s went to the table %d times for %d rows: the visibility map is not up to date."
        % (label(nid, node), fetches, rows),
        why="An index-only scan reads the table for every page not marked all-visible, losing its advantage.",
        fix="VACUUM %s; and tune autovacuum for it (autovacuum_vacuum_insert_scale_factor, "
        "autovacuum_vacuum_scale_factor) so the visibility map keeps up." % (rel or "the table"),
        evidence=dict(
            node=label(nid, node), heap_fetches=int(fetches), rows=int(rows), index=node.get("Index Name")
        ),
        references=["https://www.postgresql.org/docs/current/indexes-index-only-scans.html"],
    )


def _workers(nid, node, parent, t, doc):
    if "Workers Planned" not in node or "Workers Launched" not in node:
        return None
    planned, launched = _num(node, "Workers Planned"), _num(node, "Workers Launched")
    if launched >= planned:
        return None
    return Finding(
        rule="QP-PAR-001",
        title="Fewer parallel workers than planned",
        severity="low",
        object=label(nid, node),
        message="%s planned %d parallel workers and got %d." % (label(nid, node), planned, launched),
        why="Workers come from a shared pool (max_parallel_workers, max_worker_processes); when it is "
        "exhausted the query runs with fewer processes than its plan assumed.",
        fix="Raise max_parallel_workers / max_worker_processes (restart for the latter), or lower "
        "max_parallel_workers_per_gather so concurrent queries share the pool.",
        evidence=dict(node=label(nid, node), workers_planned=int(planned), workers_launched=int(launched)),
        references=["https://www.postgresql.org/docs/current/how-parallel-query-works.html"],
    )


NODE_RULES = (
    _seq_scan,
    _estimate,
    _nested_loop,
    _subplan,
    _sort_spill,
    _hash_spill,
    _lossy_bitmap,
    _heap_fetches,
    _workers,
)


def jit_ms(doc):
    """Total JIT milliseconds of a plan, or 0. (17 nests Generation as {Deform, Total}.)"""
    timing = (doc.get("JIT") or {}).get("Timing") or {}
    total = timing.get("Total")
    if isinstance(total, dict):
        total = total.get("Total")
    if total is None:
        total = 0.0
        for value in timing.values():
            total += float(value.get("Total", 0) if isinstance(value, dict) else value or 0)
    return float(total or 0)


def _jit(doc, t):
    jit = jit_ms(doc)
    execution = float(doc.get("Execution Time") or 0)
    if not execution or jit < t["jit_min_ms"] or jit < t["jit_share"] * execution:
        return None
    return Finding(
        rule="QP-JIT-001",
        title="JIT compilation takes a large share of the time",
        severity="medium",
        object="JIT",
        message="JIT compilation took %.1f ms of %.1f ms execution (%.0f%%)."
        % (jit, execution, 100 * jit / execution),
        why="JIT pays off on long analytic queries; on short ones, compiling costs more than it saves. "
        "It is triggered by the plan's estimated cost, which a bad estimate inflates.",
        fix="Raise jit_above_cost (and jit_inline_above_cost, jit_optimize_above_cost) or SET jit = off "
        "for this workload's role or session.",
        evidence=dict(
            jit_ms=_round(jit),
            execution_ms=_round(execution),
            share=_round(jit / execution),
            functions=(doc.get("JIT") or {}).get("Functions"),
        ),
        references=["https://www.postgresql.org/docs/current/jit-decision.html"],
    )


def analyze(explain_output, overrides=None):
    """Findings of a plan, most severe first. ``overrides``: thresholds to change."""
    doc = document(explain_output)
    t = thresholds(overrides)
    found = []
    for nid, node, parent in nodes(doc):
        for rule in NODE_RULES:
            f = rule(nid, node, parent, t, doc)
            if f is not None:
                found.append(f)
    f = _jit(doc, t)
    if f is not None:
        found.append(f)
    found.sort(key=lambda f: f.sort_key())
    return found


def rules_not_run(explain_output):
    """{rule: reason} for rules a plan without ANALYZE cannot feed."""
    doc = document(explain_output)
    if is_analyzed(doc):
        return {}
    return dict((r, "needs actual rows and timings: run with analyze") for r in ANALYZE_RULES)


# -- summary and comparison ----------------------------------------------------------
_BUFFER_KEYS = (
    ("shared_hit", "Shared Hit Blocks"),
    ("shared_read", "Shared Read Blocks"),
    ("shared_dirtied", "Shared Dirtied Blocks"),
    ("shared_written", "Shared Written Blocks"),
    ("local_hit", "Local Hit Blocks"),
    ("local_read", "Local Read Blocks"),
    ("temp_read", "Temp Read Blocks"),
    ("temp_written", "Temp Written Blocks"),
)


def buffers(explain_output):
    """Buffer counters of the whole statement (the top node adds up its children)."""
    doc = document(explain_output)
    top = doc["Plan"]
    out = dict((name, int(_num(top, key))) for name, key in _BUFFER_KEYS)
    total = out["shared_hit"] + out["shared_read"]
    out["cache_hit_ratio"] = _round(out["shared_hit"] / total) if total else None
    planning = doc.get("Planning") or {}
    out["planning_shared_hit"] = int(_num(planning, "Shared Hit Blocks"))
    out["planning_shared_read"] = int(_num(planning, "Shared Read Blocks"))
    return out


def timing(explain_output):
    """planning_time_ms, execution_time_ms, total_time_ms (None without ANALYZE), cost."""
    doc = document(explain_output)
    planning = doc.get("Planning Time")
    execution = doc.get("Execution Time")
    total = None
    if execution is not None:
        total = _round(float(execution) + float(planning or 0))
    return dict(
        planning_time_ms=_round(planning) if planning is not None else None,
        execution_time_ms=_round(execution) if execution is not None else None,
        total_time_ms=total,
        total_cost=doc["Plan"].get("Total Cost"),
        jit_ms=_round(jit_ms(doc)),
    )


def shape(explain_output):
    """{relation: sorted node types that read it} plus '(no relation)' for the other nodes.

    A Bitmap Index Scan (which names only its index) counts for the table of the Bitmap
    Heap Scan above it.
    """
    doc = document(explain_output)
    out = {}

    def walk(node, inherited):
        rel = relation(node)
        key = rel or (inherited if node.get("Index Name") else None) or "(no relation)"
        kind = node.get("Node Type", "?")
        if node.get("Index Name"):
            kind += " using %s" % node["Index Name"]
        out.setdefault(key, set()).add(kind)
        below = rel if node.get("Node Type") == "Bitmap Heap Scan" else inherited
        if node.get("Node Type") not in ("Bitmap Heap Scan", "BitmapAnd", "BitmapOr"):
            below = None
        for child in node.get("Plans") or ():
            walk(child, below)

    walk(doc["Plan"], None)
    return {k: sorted(v) for k, v in out.items()}


def compare(before, after):
    """Before/after of two explain results (each a dict with ``plan``, or a plan document).

    Returns times, their ratio (after / before; below 1 is faster), costs, buffers, ``improved``
    (fewer shared buffers touched, which does not depend on the host's load; the time ratio when
    buffers were not counted) and the relations whose node types changed.
    """
    b_doc = document(before.get("plan") if isinstance(before, dict) and "plan" in before else before)
    a_doc = document(after.get("plan") if isinstance(after, dict) and "plan" in after else after)
    bt, at = timing(b_doc), timing(a_doc)
    ratio = None
    basis = "total_time_ms"
    if bt["total_time_ms"] and at["total_time_ms"] is not None:
        ratio = _round(at["total_time_ms"] / bt["total_time_ms"]) if bt["total_time_ms"] else None
    elif bt["total_cost"] and at["total_cost"] is not None:
        basis = "total_cost"
        ratio = _round(float(at["total_cost"]) / float(bt["total_cost"]))
    bs, as_ = shape(b_doc), shape(a_doc)
    changes = []
    for rel in sorted(set(bs) | set(as_)):
        if bs.get(rel) != as_.get(rel):
            changes.append(dict(relation=rel, before=bs.get(rel, []), after=as_.get(rel, [])))
    bb, ab = buffers(b_doc), buffers(a_doc)
    touched_before = bb["shared_hit"] + bb["shared_read"]
    touched_after = ab["shared_hit"] + ab["shared_read"]
    fewer_buffers = touched_after < touched_before if touched_before else None
    return dict(
        before=bt,
        after=at,
        ratio=ratio,
        basis=basis,
        faster=None if ratio is None else ratio < 1,
        # One timing of a millisecond-long statement is noise on a busy host; the pages it touched
        # are not. Improved: fewer shared buffers touched, or faster when buffers were not counted.
        improved=bool(fewer_buffers) if fewer_buffers is not None else (None if ratio is None else ratio < 1),
        buffers=dict(
            before=dict(
                shared_hit=bb["shared_hit"], shared_read=bb["shared_read"], temp_written=bb["temp_written"]
            ),
            after=dict(
                shared_hit=ab["shared_hit"], shared_read=ab["shared_read"], temp_written=ab["temp_written"]
            ),
        ),
        shape_changed=bool(changes),
        shape_changes=changes,
    )
