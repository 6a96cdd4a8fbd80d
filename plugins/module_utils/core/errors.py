# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one exception base of the engine.

Every engine error class (PgError, SettingError, LocalClusterError, ...) derives from
``DbarchError``, so a module catches one type and ``DbarchModule.fail_from`` turns it into
``fail_json`` in one place: the message (a DBA can act on it), the SQLSTATE where known,
and never a traceback. Error classes that were ``ValueError`` keep it as a second base, so
existing ``except ValueError`` still works.

Plain Python: no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class DbarchError(Exception):
    """An error a DBA can act on. ``str()`` is the whole message.

    Subclasses may set ``sqlstate`` (the server's error code) and other attributes that
    ``details()`` returns for the module's result (e.g. ``log_tail``).
    """

    sqlstate = None

    # attributes returned with the failure when set (besides the message)
    DETAIL_ATTRIBUTES = ("sqlstate", "log_tail", "where")

    def details(self):
        """Extra fields for the module result: only those set, never a traceback."""
        out = {}
        for name in self.DETAIL_ATTRIBUTES:
            value = getattr(self, name, None)
            if value not in (None, "", [], {}):
                out[name] = value
        return out
