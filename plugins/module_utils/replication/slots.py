# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Physical replication slots of one server, the ``replication_slot`` module's engine: create a slot,
drop one nobody streams from (a former primary keeps its standbys' slots after a switchover; inactive,
they would keep WAL on it for ever).

Plain Python, no Ansible imports; SQL through a core/pg.py Session, slot names as parameters.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication.standby import (
    SLOT_NAME,
    SLOT_NAME_HINT,
)

STATES = ("present", "absent")
READ = (
    "SELECT slot_name, slot_type, active, active_pid, restart_lsn::text AS restart_lsn "
    "FROM pg_catalog.pg_replication_slots WHERE slot_name = %s"
)
CREATE = "SELECT pg_catalog.pg_create_physical_replication_slot(%s, %s)"
DROP = "SELECT pg_catalog.pg_drop_replication_slot(%s)"


class SlotError(DbarchError):
    """A slot that cannot be brought to the state asked: what, where, how to fix it."""


def check_name(name):
    if not name or not SLOT_NAME.match(name):
        raise SlotError("slot name %r: use %s" % (name, SLOT_NAME_HINT))
    return name


def plan(row, name, state):
    """(action or None, why) for slot ``name`` whose current row is ``row`` (None: missing)."""
    if state == "present":
        if row is None:
            return "create", "the slot %s is missing" % name
        if row["slot_type"] != "physical":
            raise SlotError(
                "the slot %s is a %s slot, not a physical one: drop it first or choose another name"
                % (name, row["slot_type"])
            )
        return None, "the slot %s exists" % name
    if row is None:
        return None, "the slot %s does not exist" % name
    if row["active"]:
        raise SlotError(
            "the slot %s is in use (walsender or process pid %s): stop its consumer (or repoint the standby "
            "to another slot) before dropping it" % (name, row["active_pid"])
        )
    return "drop", "the slot %s is not in use" % name


def converge(session, name, state="present", immediately_reserve=True, check_mode=False):
    """Bring slot ``name`` to ``state``; returns {changed, action, before, after, why}."""
    check_name(name)
    if state not in STATES:
        raise SlotError("state=%r: give present or absent" % (state,))
    before = session.fetchone(READ, (name,))
    action, why = plan(before, name, state)
    result = dict(changed=bool(action), action=action or "none", why=why, before=before, after=before)
    if not action or check_mode:
        if action and check_mode:
            result["after"] = None if action == "drop" else dict(slot_name=name, slot_type="physical")
        return result
    if action == "create":
        session.execute(CREATE, (name, bool(immediately_reserve)))
    else:
        session.execute(DROP, (name,))
    result["after"] = session.fetchone(READ, (name,))
    return result
