# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Health: sessions and connection capacity (activity.py), query latency estimates (latency.py)
and the health dashboard's panels judged against their thresholds (panels.py). Plain Python: no
Ansible imports."""
