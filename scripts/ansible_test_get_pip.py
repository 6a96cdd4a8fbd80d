"""Offline stand-in for the get-pip.py bootstrap that ansible-test downloads.

ansible-test creates empty virtual environments for its sanity tests and fills them by
running a cached get-pip.py (~/.ansible/test/cache/get_pip_<version>.py), which it
otherwise downloads from a host this project's machines cannot reach. get-pip.py runs an
embedded copy of pip to install pip itself. This file does the same with a copy of pip
taken from PyPI: `install` writes this script to the cache path, with the folder of an
unpacked pip wheel recorded in it; ansible-test then runs it with the new environment's
interpreter and pip arguments.

  scripts/ansible_test_get_pip.py install WHEEL_DIR [PIP_VERSION]
"""

import os
import runpy
import sys

PIP_DIR = None  # set by `install`

GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}


def run():
    sys.path.insert(0, PIP_DIR)
    # --ignore-installed: the copy of pip on sys.path must not count as installed here.
    args = [a for a in sys.argv[1:] if a not in GET_PIP_ONLY]
    sys.argv = [sys.argv[0], "install", "--ignore-installed"] + args
    runpy.run_module("pip", run_name="__main__", alter_sys=True)


def install(wheel_dir, version):
    cache = os.path.expanduser("~/.ansible/test/cache")
    os.makedirs(cache, exist_ok=True)
    target = os.path.join(cache, "get_pip_%s.py" % version.replace(".", "_"))
    with open(os.path.abspath(__file__)) as fh:
        text = fh.read()
    text = text.replace("PIP_DIR = None  # set by `install`", "PIP_DIR = %r" % os.path.abspath(wheel_dir))
    with open(target, "w") as fh:
        fh.write(text)
    print(target)


if __name__ == "__main__":
    if PIP_DIR is None:
        if len(sys.argv) < 3 or sys.argv[1] != "install":
            sys.exit(__doc__)
        install(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "24.2")
    else:
        run()
