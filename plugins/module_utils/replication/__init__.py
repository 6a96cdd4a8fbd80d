# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Replication: reading its state and lag, diagnosing lag, promoting a standby (and, beside them,
making and rejoining standbys). Plain Python: no Ansible imports."""
