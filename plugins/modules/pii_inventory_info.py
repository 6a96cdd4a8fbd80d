#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: pii_inventory_info
short_description: Inventory of the columns that hold personal data (GDPR records of processing)
version_added: "0.3.0"
description:
  - Finds the columns that hold personal data, from the catalog snapshot of the database, by name (and
    comment) against dictionaries of PII terms in English, German, French, Spanish, Dutch, Italian and
    Portuguese.
  - With O(sample=true), also by value patterns on a random sample of each table's rows (TABLESAMPLE or
    C(ORDER BY random()), in a READ ONLY transaction) e-mail, phone, IBAN (mod 97), payment card (Luhn),
    national ids (US SSN, Dutch BSN, Spanish DNI, French NIR), IP address, date of birth.
  - Each column comes with a category, its GDPR kind, a confidence between 0 and 1 and the evidence (never a
    value). The result is the data inventory for the records of processing (GDPR art. 30).
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  schemas:
    description: Schemas to look at (default every user schema).
    type: list
    elements: str
  sample:
    description: Also sample the rows and match their values.
    type: bool
    default: false
  sample_rows:
    description: Rows sampled per table.
    type: int
    default: 1000
  min_confidence:
    description: Columns below this confidence are left out.
    type: float
    default: 0.5
extends_documentation_fragment:
  - dbarch.postgresql.connection
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing has a before and after to show.
notes:
  - Sampling reads table rows, so the role needs C(SELECT) on them (C(pg_read_all_data) from PostgreSQL 14); a
    table it may not read is listed in RV(tables_skipped).
seealso:
  - module: dbarch.postgresql.data_subject
  - module: dbarch.postgresql.data_dictionary
"""

EXAMPLES = r"""
- name: PII inventory with value sampling
  dbarch.postgresql.pii_inventory_info:
    login_db: shop
    sample: true
  register: pii

- name: Columns with personal data
  ansible.builtin.debug:
    msg: "{{ pii.columns | map(attribute='column') | list }}"
"""

RETURN = r"""
columns:
  description:
    - One entry per column with personal data, C(table), C(column), C(type), C(category) (email, phone,
      person_name, address, birth_date, national_id, bank_account, payment_card, ip_address, gender, health,
      nationality), C(kind), C(confidence), C(evidence) (list of reasons), C(by) (C(name), C(values)).
  returned: always
  type: list
  elements: dict
tables:
  description: Table to the names of its columns with personal data.
  returned: always
  type: dict
sampled:
  description: The tables sampled, with C(rows) read and the C(method).
  returned: always
  type: list
  elements: dict
tables_skipped:
  description: Tables not sampled, with the reason.
  returned: always
  type: list
  elements: dict
database:
  description: The database inventoried.
  returned: always
  type: str
queries:
  description: The SQL the module ran.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.dbarch.postgresql.plugins.module_utils.compliance import pii
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.ansible_module import DbarchModule


def main():
    module = DbarchModule(
        argument_spec=dict(
            schemas=dict(type="list", elements="str"),
            sample=dict(type="bool", default=False),
            sample_rows=dict(type="int", default=1000),
            min_confidence=dict(type="float", default=0.5),
        ),
        supports_check_mode=True,
    )
    p = module.params

    def work(session):
        return pii.inventory(
            session,
            schemas=p["schemas"],
            sample=p["sample"],
            sample_rows=p["sample_rows"],
            min_confidence=p["min_confidence"],
        )

    result, queries = module.run(work)
    module.exit_json(changed=False, queries=queries, **result)


if __name__ == "__main__":
    main()
