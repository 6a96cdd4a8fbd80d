# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""indexes.py and matviews.py input checks and plan reading, with no database."""

import pytest

from ansible_collections.dbarch.postgresql.plugins.module_utils.query import indexes, matviews


@pytest.mark.parametrize("text", ["lower(email)", "(a + b)", "coalesce(x, 0)", "status = 'active'"])
def test_one_expression_is_accepted(text):
    assert indexes.check_expression(text, "columns item") == text.strip()


@pytest.mark.parametrize(
    "text",
    [
        "id) WITH (fillfactor=10",
        "a), (b",
        "true; DROP TABLE items",
        "(SELECT 1)",
        "a = $1",
        "a -- c",  # the comment would swallow the closing parenthesis
        "",
        "x AS y",
    ],
)
def test_anything_but_one_expression_is_refused(text):
    with pytest.raises(indexes.IndexError_):
        indexes.check_expression(text, "where")


def test_wanted_checks_options_before_any_database_work():
    with pytest.raises(indexes.IndexError_, match="needs method btree"):
        indexes.Wanted("i", "t", ["a"], unique=True, method="gin")
    with pytest.raises(indexes.IndexError_, match="columns is empty"):
        indexes.Wanted("i", "t", [])
    with pytest.raises(indexes.IndexError_, match="longer than 63 bytes"):
        indexes.Wanted("i" * 64, "t", ["a"])
    with pytest.raises(indexes.IndexError_, match="no INCLUDE"):
        indexes.Wanted("i", "t", ["a"], include=["b"], method="brin")


def test_nodes_using_finds_the_scan_of_the_index_at_any_depth():
    plan = {
        "Plan": {
            "Node Type": "Nested Loop",
            "Plans": [
                {"Node Type": "Seq Scan", "Relation Name": "a"},
                {
                    "Node Type": "Bitmap Heap Scan",
                    "Plans": [{"Node Type": "Bitmap Index Scan", "Index Name": "a_b_idx", "Total Cost": 4.3}],
                },
            ],
        }
    }
    assert indexes.nodes_using(plan, "a_b_idx") == [
        {"Node Type": "Bitmap Index Scan", "Index Name": "a_b_idx", "Total Cost": 4.3}
    ]
    assert indexes.nodes_using(plan, "other") == []


def test_temporary_names_stay_within_namedatalen():
    assert indexes.temp_name("orders_idx") == "orders_idx_dbarch_new"
    assert len(indexes.temp_name("x" * 63).encode()) == 63
    assert len(matviews.unique_index_name("é" * 40).encode()) <= 63


@pytest.mark.parametrize(
    "query", ["SELECT 1; SELECT 2", "DELETE FROM t", "SELECT * INTO t2 FROM t", "SELECT $1"]
)
def test_matview_query_must_be_one_plain_select(query):
    with pytest.raises(matviews.MatviewError):
        matviews.check_query(query)


def test_matview_query_loses_its_trailing_semicolon():
    assert matviews.check_query(" VALUES (1), (2); ") == "VALUES (1), (2)"
