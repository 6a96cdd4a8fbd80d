# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Paths and tools shared by the monitoring unit tests."""

import json
import os
import shutil
import subprocess

import jinja2
import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
ROLE = os.path.join(ROOT, "roles", "monitoring")
FILES = os.path.join(ROLE, "files")
RULE_FILES = sorted(
    os.path.join(FILES, "rules", name)
    for name in os.listdir(os.path.join(FILES, "rules"))
    if name.endswith(".yml")
)
TEST_FILES = sorted(
    os.path.join(FILES, "tests", name)
    for name in os.listdir(os.path.join(FILES, "tests"))
    if name.endswith(".yml")
)
# Debian's packages; CI installs them (Makefile DEB_TEST).
PACKAGE_OF = {"promtool": "prometheus", "amtool": "prometheus-alertmanager"}


def tool(name):
    """Path of a Prometheus tool, or a skip that names the Debian package to install."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(
            "%s is not installed: apt-get install %s (make system-deps-test)" % (name, PACKAGE_OF[name])
        )
    return path


def run(argv, **kwargs):
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False, **kwargs)


def load_yaml(path):
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def alerts():
    """{alert name: rule} over every rule file."""
    found = {}
    for path in RULE_FILES:
        for group in load_yaml(path)["groups"]:
            for rule in group["rules"]:
                found[rule["alert"]] = dict(rule, file=os.path.basename(path))
    return found


def role_defaults():
    return load_yaml(os.path.join(ROLE, "defaults", "main.yml"))


def render_template(name, **overrides):
    """Render one of the role's templates as Ansible would (to_json is Ansible's filter, json.dumps)."""
    env = jinja2.Environment(  # noqa: S701 - YAML, not HTML (Ansible does not escape either)
        loader=jinja2.FileSystemLoader(os.path.join(ROLE, "templates")),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["to_json"] = json.dumps
    variables = role_defaults()
    variables.update(overrides)
    return env.get_template(name).render(**variables)
