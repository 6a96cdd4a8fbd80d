# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL 14-18 differences, in one place.

Modules and engine pieces ask a ``Features`` object instead of comparing version
numbers themselves. Add a difference here, with the release that introduced it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

SUPPORTED_MAJORS = (14, 15, 16, 17, 18)


def major_of(version_num):
    """140012 -> 14, 180001 -> 18."""
    return int(version_num) // 10000


def version_text(version_num):
    v = int(version_num)
    return "%d.%d" % (v // 10000, v % 10000)


class Features:
    """What a given server version has. Every attribute is documented by its release."""

    def __init__(self, version_num):
        self.num = int(version_num)
        self.major = major_of(self.num)

    def __repr__(self):
        return "Features(%s)" % version_text(self.num)

    @property
    def supported(self):
        return self.major in SUPPORTED_MAJORS

    # -- pg_stat_statements ------------------------------------------------------
    @property
    def pgss_columns(self):
        """Logical name -> column of pg_stat_statements on this version.

        13 renamed total_time -> total_exec_time (and mean/min/max/stddev);
        15 added temp_blk_read_time/temp_blk_write_time and the jit_* counters;
        17 renamed blk_read_time/blk_write_time -> shared_blk_read_time/...
        and added local_blk_*_time; stats_since appeared in 17.
        A logical name mapped to None has no column on this version.
        """
        cols = {
            "total_time": "total_exec_time",
            "mean_time": "mean_exec_time",
            "min_time": "min_exec_time",
            "max_time": "max_exec_time",
            "stddev_time": "stddev_exec_time",
            "total_plan_time": "total_plan_time",
            "calls": "calls",
            "rows": "rows",
            "shared_blks_hit": "shared_blks_hit",
            "shared_blks_read": "shared_blks_read",
            "temp_blks_read": "temp_blks_read",
            "temp_blks_written": "temp_blks_written",
            "wal_bytes": "wal_bytes",
            "toplevel": "toplevel",
        }
        if self.major >= 15:
            cols["temp_blk_read_time"] = "temp_blk_read_time"
            cols["temp_blk_write_time"] = "temp_blk_write_time"
        else:
            cols["temp_blk_read_time"] = None
            cols["temp_blk_write_time"] = None
        if self.major >= 17:
            cols["blk_read_time"] = "shared_blk_read_time"
            cols["blk_write_time"] = "shared_blk_write_time"
            cols["stats_since"] = "stats_since"
        else:
            cols["blk_read_time"] = "blk_read_time"
            cols["blk_write_time"] = "blk_write_time"
            cols["stats_since"] = None
        return cols

    @property
    def pgss_jit_time_columns(self):
        """15 added jit_*_time to pg_stat_statements; 17 added jit_deform_time."""
        if self.major < 15:
            return ()
        cols = ("jit_generation_time", "jit_inlining_time", "jit_optimization_time", "jit_emission_time")
        if self.major >= 17:
            cols += ("jit_deform_time",)
        return cols

    # -- statistics views ----------------------------------------------------------
    @property
    def has_last_idx_scan(self):
        """16 added last_seq_scan / last_idx_scan to pg_stat_*_tables/indexes."""
        return self.major >= 16

    # -- planning ---------------------------------------------------------------------
    @property
    def has_explain_generic_plan(self):
        """16 added EXPLAIN (GENERIC_PLAN): a statement with $1 placeholders is planned as is.

        Before 16 the statement is prepared (parameter types inferred) and EXPLAIN EXECUTE
        runs with NULL values under plan_cache_mode = force_generic_plan, so the NULLs are
        not folded into the plan.
        """
        return self.major >= 16

    @property
    def generic_plan_prunes_partitions_at_startup(self):
        """Before 16 a generic plan is shown with EXPLAIN EXECUTE, which starts the executor:
        initial partition pruning with the NULL parameter values removes every partition
        ("Subplans Removed"). The plan is taken again with enable_partition_pruning off, which
        shows every partition as EXPLAIN (GENERIC_PLAN) does on 16+."""
        return self.major < 16

    # -- catalog shape ---------------------------------------------------------------------
    @property
    def has_nulls_not_distinct(self):
        """15 added UNIQUE NULLS NOT DISTINCT (pg_index.indnullsnotdistinct)."""
        return self.major >= 15

    # -- backup / replication ------------------------------------------------------------
    @property
    def has_server_side_compression(self):
        """15 added pg_basebackup --compress=server-... and lz4/zstd."""
        return self.major >= 15

    @property
    def basebackup_compression_methods(self):
        """pg_basebackup compression: 14 has gzip only (client side, tar format); 15 added lz4, zstd."""
        if self.major >= 15:
            return ("gzip", "lz4", "zstd")
        return ("gzip",)

    @property
    def verifybackup_reads_tar(self):
        """18 taught pg_verifybackup to read tar-format backups (before: plain only)."""
        return self.major >= 18

    @property
    def replication_slot_columns(self):
        """Columns of pg_replication_slots beyond those every supported major has (14: slot_name ...
        wal_status, safe_wal_size, two_phase): 16 added ``conflicting`` (a logical slot invalidated
        by a recovery conflict); 17 added ``inactive_since``, ``invalidation_reason``, ``failover``
        and ``synced``; 18 added ``two_phase_at``."""
        cols = ()
        if self.major >= 16:
            cols += ("conflicting",)
        if self.major >= 17:
            cols += ("inactive_since", "invalidation_reason", "failover", "synced")
        if self.major >= 18:
            cols += ("two_phase_at",)
        return cols

    @property
    def recovery_conflict_columns(self):
        """The counters of pg_stat_database_conflicts: 16 added ``confl_active_logicalslot``
        (logical slots on a standby)."""
        cols = ("confl_tablespace", "confl_lock", "confl_snapshot", "confl_bufferpin", "confl_deadlock")
        if self.major >= 16:
            cols += ("confl_active_logicalslot",)
        return cols

    # -- connections ---------------------------------------------------------------------
    @property
    def reserved_connection_settings(self):
        """The settings whose slots of max_connections ordinary roles cannot use: every major has
        ``superuser_reserved_connections``; 16 added ``reserved_connections`` (for roles granted
        pg_use_reserved_connections)."""
        names = ("superuser_reserved_connections",)
        if self.major >= 16:
            names += ("reserved_connections",)
        return names

    # -- scaling diagnosis (diagnose_info) -------------------------------------------------
    @property
    def checkpoint_counters_sql(self):
        """Checkpoints timed and requested: 17 moved them from pg_stat_bgwriter (checkpoints_timed,
        checkpoints_req) to pg_stat_checkpointer (num_timed, num_requested)."""
        if self.major >= 17:
            return "SELECT num_timed AS timed, num_requested AS requested FROM pg_stat_checkpointer"
        return "SELECT checkpoints_timed AS timed, checkpoints_req AS requested FROM pg_stat_bgwriter"

    @property
    def temp_file_wait_events(self):
        """The IO wait events of a backend on its own temporary files (a sort or hash spilling past
        work_mem): 17 renamed BufFileRead/BufFileWrite/BufFileTruncate to BuffileRead/BuffileWrite/
        BuffileTruncate (the names generated from wait_event_names.txt)."""
        stem = "Buffile" if self.major >= 17 else "BufFile"
        return frozenset(stem + op for op in ("Read", "Write", "Truncate"))

    @property
    def has_pg_stat_io(self):
        """16 added pg_stat_io (reads, read_time, evictions per backend type, object and context)."""
        return self.major >= 16

    # -- security audit ------------------------------------------------------------------------
    @property
    def public_schema_create_by_default(self):
        """Before 15 PUBLIC has CREATE on schema public in a new database (15 revoked it and made
        pg_database_owner the schema's owner)."""
        return self.major < 15

    @property
    def log_connections_is_list(self):
        """18 turned log_connections into a list of aspects (receipt, authentication, authorization,
        setup_durations, or all); before 18 it is a boolean."""
        return self.major >= 18

    def log_connections_enabled(self, value):
        """Whether a log_connections value logs connections on this version (a boolean before 18;
        on 18 a list where receipt, authentication, authorization, 'all' or a true boolean counts)."""
        text = str(value or "").strip().lower()
        if text in ("on", "true", "yes", "1", "all"):
            return True
        if not self.log_connections_is_list:
            return False
        return any(a.strip() in ("receipt", "authentication", "authorization") for a in text.split(","))
