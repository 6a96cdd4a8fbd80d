"""Bad connection input: one line naming host, port, user and the server's reason; no secret."""

import socket
import subprocess
import sys


def _facts(run_playbook, params, **kw):
    return run_playbook(
        [
            dict(
                hosts="localhost",
                gather_facts=False,
                tasks=[
                    dict(name="facts", **{"dbarch.postgresql.server_info": params}),
                ],
            )
        ],
        **kw,
    )


def test_wrong_password(pg, run_playbook):
    res = _facts(run_playbook, dict(pg.conn_params, login_password="not-the-password-42"))
    assert res.rc != 0
    msg = res.task("facts")["result"]["msg"]
    assert "host=127.0.0.1 port=%d user=postgres" % pg.port in msg
    assert "password authentication failed" in msg
    assert "\n" not in msg and "Traceback" not in msg
    assert "not-the-password-42" not in res.stdout and "not-the-password-42" not in msg


def test_wrong_port_and_database(pg, run_playbook, tmp_path):
    with socket_closed_port() as port:
        res = _facts(run_playbook, dict(pg.conn_params, login_port=port, connect_timeout=3))
    msg = res.task("facts")["result"]["msg"]
    assert res.rc != 0 and "port=%d" % port in msg and "Connection refused" in msg
    res = _facts(run_playbook, dict(pg.conn_params, login_db="no_such_db"))
    msg = res.task("facts")["result"]["msg"]
    assert 'database "no_such_db" does not exist' in msg and "db=no_such_db" in msg


def test_bad_timeout_value_is_explained(pg, run_playbook):
    res = _facts(run_playbook, dict(pg.conn_params, lock_timeout="5 seconds"))
    assert "is not a PostgreSQL duration" in res.task("facts")["result"]["msg"]


def test_missing_driver_names_the_package(pg, run_playbook, tmp_path):
    venv = tmp_path / "nodriver"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    res = _facts(
        run_playbook, pg.conn_params, extra_vars=dict(ansible_python_interpreter=str(venv / "bin" / "python"))
    )
    msg = res.task("facts")["result"]["msg"]
    assert res.rc != 0
    assert "python3-psycopg2" in msg and "psycopg2-binary" in msg


class socket_closed_port:
    """A port nothing listens on, held closed for the duration."""

    def __enter__(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        return self.port

    def __exit__(self, *exc):
        return False
