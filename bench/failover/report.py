# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The failover benchmark's tables: totals, ratios to Patroni, and where the time went."""

import subprocess

import observe

PATRONI_DEFAULT = "patroni-default"
PATRONI_TUNED = "patroni-tuned"

SWITCHOVER_COLUMNS = [name for name, _m in observe.SWITCHOVER_PHASES]
FAILOVER_COLUMNS = [name for name, _m in observe.FAILOVER_PHASES]


def uptime():
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "n/a"


def _best_of(runs, what):
    done = [r[what] for r in runs if isinstance(r.get(what), dict) and r[what].get("total") is not None]
    if not done:
        errors = [r.get(what, {}).get("error") or r.get("error") for r in runs]
        return dict(total=None, error="; ".join(e for e in errors if e) or "not measured")
    return dict(min(done, key=lambda item: item["total"]), all_totals=[d["total"] for d in done])


def best(results):
    """{side key: {label, settings, switchover: best run's, failover: best run's}}."""
    out = {}
    for key, runs in results.items():
        out[key] = dict(
            label=runs[0]["label"],
            settings=runs[0]["settings"],
            switchover=_best_of(runs, "switchover"),
            failover=_best_of(runs, "failover") if any("failover" in r for r in runs) else None,
        )
    return out


def _s(value):
    return "%.2f" % value if isinstance(value, (int, float)) else "-"


def _ratio(value, base):
    if isinstance(value, (int, float)) and isinstance(base, (int, float)) and base:
        return "%.2fx" % (value / base)
    return "-"


def _table(doc, what, columns, extra):
    bests = doc["best"]
    base_default = ((bests.get(PATRONI_DEFAULT) or {}).get(what) or {}).get("total")
    base_tuned = ((bests.get(PATRONI_TUNED) or {}).get(what) or {}).get("total")
    head = ["side", "total s", "/Patroni", "/Patroni tuned"] + columns + extra
    rows = []
    for item in bests.values():
        res = item.get(what)
        if res is None:
            continue
        marks = res.get("milestones") or {}
        phases = res.get("phases") or {}
        row = [item["label"], _s(res.get("total")), _ratio(res.get("total"), base_default)]
        row.append(_ratio(res.get("total"), base_tuned))
        row += [_s(phases.get(name)) for name in columns]
        row += [_s(marks.get(name)) for name in extra_keys(extra)]
        rows.append(row)
        if res.get("error"):
            rows.append(["  ! " + res["error"][:150]])
    for key, why in sorted(doc.get("skipped", {}).items()):
        rows.append(["%s: skipped (%s)" % (key, why)])
    full = [head] + [r for r in rows if len(r) > 1]
    widths = [max(len(r[i]) for r in full) for i in range(len(head))]
    lines = [
        "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(head, widths, strict=False))
        )
    ]
    for row in rows:
        if len(row) == 1:
            lines.append(row[0])
            continue
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=False))
            )
        )
    return lines


EXTRA = {
    "sibling": "sibling_streams_from_new",
    "tool exit": "tool_returned",
}


def extra_keys(extra):
    return [EXTRA[name] for name in extra]


def print_tables(doc):
    print()
    print("Switchover: seconds from the command's start until the new primary accepts writes AND the old")
    print("primary streams from it (total); phases end at: prepare = old primary asked to shut down,")
    print("stop_old = it is down, handover = new one asked to promote, promote = out of recovery,")
    print("first_write = an INSERT succeeds, rejoin_old = the old primary streams from the new one.")
    print("sibling = the third node streams from the new primary; tool exit = the command returned.")
    for line in _table(doc, "switchover", SWITCHOVER_COLUMNS, ["sibling", "tool exit"]):
        print(line)
    print()
    print("Unclean failover under pgbench: seconds from the SIGKILL until a survivor accepts writes (total);")
    print("detect = until the survivor is asked to promote, promote = out of recovery, first_write = an")
    print("INSERT succeeds; sibling = the other survivor streams from it; tool exit = when dbarch's")
    print("playbook returned.")
    for line in _table(doc, "failover", FAILOVER_COLUMNS, ["sibling", "tool exit"]):
        print(line)
    print()
    print("Settings:")
    for key, item in doc["best"].items():
        print("  %-16s %s" % (key, ", ".join("%s=%s" % kv for kv in sorted(item["settings"].items()))))
    print("Versions: %s" % "; ".join("%s %s" % kv for kv in sorted(doc["versions"].items())))
    print("Load: start %s" % doc["load"].get("start"))
    print("      end   %s" % doc["load"].get("end"))
    print("Elapsed %.0fs" % doc["elapsed_seconds"])
