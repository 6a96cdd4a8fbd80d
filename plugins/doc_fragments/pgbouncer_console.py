# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # PgBouncer's admin console (pgbouncer, pgbouncer_info).
    DOCUMENTATION = r"""
options:
  admin_host:
    description:
      - Address PgBouncer listens on (its C(listen_addr)), or the folder of its Unix socket (its
        C(unix_socket_dir)).
      - Kept apart from O(login_host), which names the PostgreSQL server, so that one C(module_defaults)
        block for C(group/dbarch.postgresql.all) cannot send these modules to PostgreSQL by mistake.
    type: str
    default: 127.0.0.1
  admin_port:
    description:
      - PgBouncer's C(listen_port).
    type: int
    default: 6432
  admin_user:
    description:
      - A role in PgBouncer's C(admin_users) (and in its auth file). The role
        M(dbarch.postgresql.pgbouncer_auth) sets up is both PgBouncer's C(auth_user) and its only admin.
    type: str
    default: dbarch_pgbouncer
  admin_password:
    description:
      - Password of O(admin_user) on PgBouncer. Never shown in output or logs.
    type: str
  admin_connect_timeout:
    description:
      - Seconds to wait for the admin console.
      - PgBouncer 1.18 never answers a login to its console by a role missing from its auth file, so such a
        login fails only when this timeout runs out.
    type: int
    default: 10
"""
