from ansible_collections.dbarch.postgresql.plugins.module_utils.core.versions import (
    SUPPORTED_MAJORS,
    Features,
    major_of,
    version_text,
)


def test_major_and_text():
    assert major_of(140012) == 14 and major_of(180001) == 18
    assert version_text(170006) == "17.6"


def test_pg_stat_statements_columns():
    assert Features(160000).pgss_columns["blk_read_time"] == "blk_read_time"
    assert Features(170000).pgss_columns["blk_read_time"] == "shared_blk_read_time"
    assert Features(170000).pgss_columns["stats_since"] == "stats_since"
    assert Features(160000).pgss_columns["stats_since"] is None
    assert all(Features(n * 10000).pgss_columns["total_time"] == "total_exec_time" for n in SUPPORTED_MAJORS)


def test_release_boundaries():
    assert not Features(150000).has_last_idx_scan and Features(160000).has_last_idx_scan
    assert not Features(140000).has_nulls_not_distinct and Features(150000).has_nulls_not_distinct
    assert not Features(140000).has_server_side_compression and Features(150000).has_server_side_compression
    assert Features(140000).basebackup_compression_methods == ("gzip",)
    assert not Features(170000).verifybackup_reads_tar and Features(180000).verifybackup_reads_tar
    assert Features(130000).supported is False and Features(180000).supported is True


def test_pg_stat_statements_columns_added_in_15_and_17():
    assert Features(140000).pgss_columns["temp_blk_read_time"] is None
    assert Features(150000).pgss_columns["temp_blk_read_time"] == "temp_blk_read_time"
    assert Features(140000).pgss_jit_time_columns == ()
    assert "jit_deform_time" not in Features(160000).pgss_jit_time_columns
    assert "jit_deform_time" in Features(170000).pgss_jit_time_columns


def test_scaling_diagnosis_differences():
    assert "pg_stat_checkpointer" in Features(170000).checkpoint_counters_sql
    assert "pg_stat_bgwriter" in Features(160000).checkpoint_counters_sql
    assert not Features(150000).has_pg_stat_io and Features(160000).has_pg_stat_io
    assert Features(150000).reserved_connection_settings == ("superuser_reserved_connections",)
    assert "reserved_connections" in Features(160000).reserved_connection_settings
