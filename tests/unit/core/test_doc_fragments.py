"""The connection doc fragment's no-alias variant is its main text without the aliases lines."""

import re

from ansible_collections.dbarch.postgresql.plugins.doc_fragments.connection import ModuleDocFragment


def test_no_aliases_is_documentation_without_aliases():
    expected = re.sub(r"\n    aliases: \[[^\]]*\]", "", ModuleDocFragment.DOCUMENTATION)
    assert expected == ModuleDocFragment.NO_ALIASES
    assert "aliases:" not in ModuleDocFragment.NO_ALIASES
