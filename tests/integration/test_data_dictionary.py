# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dbarch.postgresql.data_dictionary through real ansible-playbook runs.

Live database and DDL files; every format written, a second run changes nothing, check
mode writes nothing, and the DBML validates with @dbml/cli's dbml2sql. Install it with:
``npm install --prefix .cache/npm @dbml/cli`` (the test does it when npm is present).
"""

import os
import re
import shutil
import subprocess
import uuid

import pytest

import harness
from test_ddl_vs_live import SHOP_SQL

NPM_PREFIX = harness.REPO_ROOT / ".cache" / "npm"
DBML2SQL = NPM_PREFIX / "node_modules" / ".bin" / "dbml2sql"
ALL = [
    "data_dictionary.dbml",
    "data_dictionary.dot",
    "data_dictionary.md",
    "data_dictionary.mmd",
    "data_dictionary.svg",
]


def _play(run_playbook, args, **kw):
    return run_playbook(
        [
            dict(
                hosts="localhost",
                gather_facts=False,
                tasks=[dict(name="dictionary", **{"dbarch.postgresql.data_dictionary": args})],
            )
        ],
        **kw,
    )


@pytest.fixture(scope="module")
def shopdb(pg):
    name = pg.createdb("dd_%s" % uuid.uuid4().hex[:10])
    conn = pg.connect(name)
    try:
        with conn.cursor() as cur:
            cur.execute(SHOP_SQL)
            cur.execute("ANALYZE")
    finally:
        conn.close()
    yield name
    with pg.connect() as conn, conn.cursor() as cur:
        cur.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)


def dbml2sql():
    if DBML2SQL.exists():
        return str(DBML2SQL)
    if shutil.which("npm") is None:
        pytest.skip("npm is missing: apt-get install npm, then npm install --prefix .cache/npm @dbml/cli")
    proc = subprocess.run(
        ["npm", "install", "--prefix", str(NPM_PREFIX), "@dbml/cli"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0 or not DBML2SQL.exists():
        pytest.skip("npm install --prefix .cache/npm @dbml/cli failed: %s" % proc.stderr[-500:])
    return str(DBML2SQL)


def test_live_database_every_format_then_idempotent(pg, shopdb, run_playbook, tmp_path):
    args = dict(pg.conn_params, login_db=shopdb, dest=str(tmp_path / "dd"))
    first = _play(run_playbook, args)
    first.assert_ok()
    r = first.task("dictionary")["result"]
    assert r["changed"] is True and r["summary"]["source"] == "database"
    assert sorted(os.listdir(tmp_path / "dd")) == ALL
    md = (tmp_path / "dd" / "data_dictionary.md").read_text()
    assert "## public.orders" in md and "`orders_user_id_fkey`" in md and "Referenced by:" in md
    assert "People who buy" in md and "about " in md
    assert (tmp_path / "dd" / "data_dictionary.svg").read_text().lstrip().startswith("<?xml")
    assert (tmp_path / "dd" / "data_dictionary.mmd").read_text().startswith("erDiagram")
    again = _play(run_playbook, args)
    again.assert_ok()
    assert again.task("dictionary")["result"]["changed"] is False
    assert again.task("dictionary")["result"]["changed_files"] == []


def test_check_mode_writes_nothing_and_shows_diff(run_playbook, tmp_path):
    src = tmp_path / "ddl"
    src.mkdir()
    (src / "001_shop.sql").write_text(SHOP_SQL)
    dest = tmp_path / "out"
    res = _play(run_playbook, dict(src=[str(src)], dest=str(dest)), check=True, diff=True)
    res.assert_ok()
    r = res.task("dictionary")["result"]
    assert r["changed"] is True and len(r["changed_files"]) == 5
    assert not dest.exists()
    assert "## public.order_items" in r["diff"][0]["after"]
    assert r["queries"] == [] and r["summary"]["source"] == "ddl"


def test_ddl_files_and_dbml_validates(run_playbook, tmp_path):
    src = tmp_path / "ddl"
    src.mkdir()
    (src / "001_shop.sql").write_text(SHOP_SQL)
    dest = tmp_path / "out"
    res = _play(run_playbook, dict(src=[str(src)], dest=str(dest), formats=["markdown", "dbml"]))
    res.assert_ok()
    assert sorted(os.listdir(dest)) == ["data_dictionary.dbml", "data_dictionary.md"]
    assert (
        _play(run_playbook, dict(src=[str(src)], dest=str(dest), formats=["markdown", "dbml"])).task(
            "dictionary"
        )["result"]["changed"]
        is False
    )
    proc = subprocess.run(
        [dbml2sql(), str(dest / "data_dictionary.dbml"), "--postgres"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'CREATE TABLE "public"."orders"' in proc.stdout or 'CREATE TABLE "orders"' in proc.stdout
    assert "ON DELETE CASCADE" in proc.stdout


def test_bad_ddl_fails_with_file_and_line(run_playbook, tmp_path):
    bad = tmp_path / "bad.sql"
    bad.write_text("CREATE TABLE ok (id int);\n\nCREATE TABLE broken (id int,,);\n")
    res = _play(run_playbook, dict(src=[str(bad)], dest=str(tmp_path / "out")))
    r = res.task("dictionary")["result"]
    assert res.rc != 0 and r["failed"] is True
    assert "bad.sql:3" in r["msg"] and "syntax error" in r["msg"]
    assert "Traceback" not in r["msg"]


PARTITIONED_HOSTILE_SQL = """
CREATE TABLE readings (taken_on date NOT NULL, sensor int NOT NULL, value numeric)
    PARTITION BY RANGE (taken_on);
CREATE TABLE readings_2024 PARTITION OF readings FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE readings_2025 PARTITION OF readings FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
INSERT INTO readings SELECT DATE '2024-01-01' + (i % 700), i % 17, i FROM generate_series(1, 5000) i;
CREATE TABLE never_analyzed (id int);
CREATE TABLE "<script>alert(1)</script>|t" (id int PRIMARY KEY, "x|y" text);
COMMENT ON TABLE "<script>alert(1)</script>|t" IS '<script>alert(1)</script> | and a
second line';
"""


def test_partitioned_sizes_and_hostile_names(pg, run_playbook, tmp_path):
    """No negative size (relpages -1 of a partitioned table); names and comments cannot inject HTML."""
    name = pg.createdb("dd_%s" % uuid.uuid4().hex[:10])
    try:
        with pg.connect(name) as conn, conn.cursor() as cur:
            cur.execute(PARTITIONED_HOSTILE_SQL)
            cur.execute("VACUUM ANALYZE readings")
            cur.execute("SELECT relpages FROM pg_class WHERE relname = 'readings'")
            assert cur.fetchone()[0] < 0  # the case: PostgreSQL 14+ keeps -1 for a partitioned table
            cur.execute(
                "SELECT sum(pg_relation_size(c.oid)) FROM pg_class c WHERE c.relname IN "
                "('readings_2024', 'readings_2025')"
            )
            parts_bytes = int(cur.fetchone()[0])
        dest = tmp_path / "dd"
        res = _play(
            run_playbook,
            dict(
                pg.conn_params, login_db=name, dest=str(dest), formats=["markdown", "mermaid", "dbml", "dot"]
            ),
        )
        res.assert_ok()
        md = (dest / "data_dictionary.md").read_text()
        assert not re.search(r"size -|-\d+ B", md)
        section = md.split("## public.readings\n", 1)[1].split("\n## ", 1)[0]
        assert "(sum of 2 partitions)" in section
        shown = re.search(r"size ([\d.]+) (B|kB|MB)", section)
        factor = {"B": 1, "kB": 1024, "MB": 1024 * 1024}[shown.group(2)]
        assert float(shown.group(1)) * factor >= parts_bytes * 0.9
        assert "size unknown" in md.split("## public.never_analyzed\n", 1)[1].split("\n## ", 1)[0]
        outside_code = re.sub(r"`[^`\n]*`", "", md)
        assert "<script" not in outside_code
        assert "## public.&lt;script&gt;alert(1)&lt;/script&gt;\\|t" in md
        assert "&lt;script&gt;alert(1)&lt;/script&gt; \\| and a second line" in md
        for other in ("data_dictionary.mmd", "data_dictionary.dot"):
            text = (dest / other).read_text()
            assert "<script" not in re.sub(r'"(?:[^"\\]|\\.)*"', "", text), other
    finally:
        with pg.connect() as conn, conn.cursor() as cur:
            cur.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
