# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The scenario's stand-in for AWS: moto's RDS in server mode (a real HTTP endpoint).

    moto_rds.py start DIR           moto_server on a free port; DIR/endpoint and DIR/moto.pid written
    moto_rds.py create DIR ID       the RDS instance to resize (no collection module creates one)
    moto_rds.py describe DIR ID     the instance and its manual snapshots, as JSON, read from moto's API
    moto_rds.py stop DIR            stops the moto_server of DIR/moto.pid (nothing to do if none)

Run with the controller's Python (ansible_playbook_python): moto and boto3 are the collection's test
requirements. Keys: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_DEFAULT_REGION from the environment
(molecule.yml sets moto's dummy ones)."""

import json
import os
import signal
import sys
import time

import boto3

# moto_server is started the way the integration tests start it (tests/integration/motoserver.py)
sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "tests", "integration")
)
import motoserver  # noqa: E402


def _read(path):
    with open(path) as handle:
        return handle.read().strip()


def _paths(folder):
    return os.path.join(folder, "endpoint"), os.path.join(folder, "moto.pid")


def _client(folder):
    return boto3.client("rds", endpoint_url=_read(_paths(folder)[0]))


def _is_moto(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            return b"moto_server" in handle.read()
    except OSError:
        return False


def start(folder):
    endpoint_file, pid_file = _paths(folder)
    if os.path.exists(pid_file) and _is_moto(int(_read(pid_file))):
        print(json.dumps({"changed": False, "endpoint": _read(endpoint_file)}))
        return
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "moto.log"), "ab") as log:
        try:
            proc, endpoint = motoserver.start(log=log, new_session=True)  # outlives this step
        except RuntimeError as exc:
            sys.exit("%s (see %s/moto.log)" % (exc, folder))
    with open(endpoint_file, "w") as handle:
        handle.write(endpoint + "\n")
    with open(pid_file, "w") as handle:
        handle.write("%d\n" % proc.pid)
    print(json.dumps({"changed": True, "endpoint": endpoint, "pid": proc.pid}))


def create(folder, ident):
    api = _client(folder)
    known = [i["DBInstanceIdentifier"] for i in api.describe_db_instances()["DBInstances"]]
    if ident in known:
        print(json.dumps({"changed": False}))
        return
    api.create_db_instance(
        DBInstanceIdentifier=ident,
        DBInstanceClass="db.t3.micro",
        Engine="postgres",
        EngineVersion="16.3",
        AllocatedStorage=20,
        StorageType="gp3",
        MasterUsername="dba",
        MasterUserPassword="molecule-only-not-a-secret",
        MultiAZ=True,
    )
    print(json.dumps({"changed": True}))


def describe(folder, ident):
    api = _client(folder)
    instance = api.describe_db_instances(DBInstanceIdentifier=ident)["DBInstances"][0]
    snapshots = api.describe_db_snapshots(DBInstanceIdentifier=ident, SnapshotType="manual")["DBSnapshots"]
    print(json.dumps({"instance": instance, "snapshots": snapshots}, default=str))


def stop(folder):
    endpoint_file, pid_file = _paths(folder)
    changed = False
    if os.path.exists(pid_file):
        pid = int(_read(pid_file))
        if _is_moto(pid):  # never a pid the system has since given to another process
            os.kill(pid, signal.SIGTERM)
            for _attempt in range(150):
                if not _is_moto(pid):
                    break
                time.sleep(0.2)
            else:
                os.kill(pid, signal.SIGKILL)
            changed = True
        os.unlink(pid_file)
    if os.path.exists(endpoint_file):
        os.unlink(endpoint_file)
    print(json.dumps({"changed": changed}))


if __name__ == "__main__":
    command, folder, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
    dict(start=start, create=create, describe=describe, stop=stop)[command](folder, *rest)
