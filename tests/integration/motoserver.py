# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""moto's server (a real HTTP endpoint for S3, RDS, Route 53, Secrets Manager) on a free port of
127.0.0.1: the ``moto`` fixture of conftest.py and the rds_resize Molecule scenario
(molecule/rds_resize/files/moto_rds.py) start it here. Standard library only."""

import os
import shutil
import socket
import subprocess
import sys
import time


def start(log=subprocess.DEVNULL, new_session=False, timeout=30):
    """(Popen, endpoint URL) of a moto_server answering on a free port; RuntimeError when it does not
    start. ``new_session``: the server outlives the process that started it (a Molecule step)."""
    server = shutil.which("moto_server", path=os.path.dirname(sys.executable)) or shutil.which("moto_server")
    if not server:
        raise RuntimeError("moto_server not found next to %s nor on PATH" % sys.executable)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [server, "-H", "127.0.0.1", "-p", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=new_session,
    )
    deadline = time.time() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, "http://127.0.0.1:%d" % port
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                raise RuntimeError("moto_server did not start on port %d" % port) from None
            time.sleep(0.2)
