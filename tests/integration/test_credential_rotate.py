"""dbarch.postgresql.credential_rotate against a real cluster and moto's Secrets Manager server:
the new password logs in, the secret holds it, the old one stops when revoked, no password in
any output."""

import json
import os

import boto3
import psycopg2
import pytest

import harness

SINGLE, TWO = "dbarch/it/rot-app", "dbarch/it/rot-blue-green"


def rotate(pg, moto, name, **options):
    options = dict(
        options,
        endpoint_url=moto,
        region="us-east-1",
        aws_access_key_id=harness.S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=harness.S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    return harness.task("credential_rotate", name, **options)


def secret(moto, secret_id):
    client = boto3.client("secretsmanager", endpoint_url=moto, region_name="us-east-1", **_keys())
    return json.loads(client.get_secret_value(SecretId=secret_id)["SecretString"])


def _keys():
    return dict(
        aws_access_key_id=harness.S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=harness.S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def can_login(pg, role, password):
    try:
        psycopg2.connect(host=pg.host, port=pg.port, user=role, password=password, dbname="postgres").close()
        return True
    except psycopg2.OperationalError:
        return False


@pytest.fixture
def roles(pg, moto):
    names = ("rot_app", "rot_blue", "rot_green")
    for name in names:
        pg.query("DROP ROLE IF EXISTS %s" % name)
    pg.query("CREATE ROLE rot_app LOGIN PASSWORD 'Initial-Password-0001'")
    pg.query("CREATE ROLE rot_blue LOGIN PASSWORD 'Initial-Blue-0001'")
    pg.query("CREATE ROLE rot_green LOGIN PASSWORD 'Initial-Green-0001'")
    client = boto3.client("secretsmanager", endpoint_url=moto, region_name="us-east-1", **_keys())
    for sid in (SINGLE, TWO):
        try:
            client.delete_secret(SecretId=sid, ForceDeleteWithoutRecovery=True)
        except client.exceptions.ResourceNotFoundException:
            pass
    yield names
    for name in names:
        pg.query("DROP ROLE IF EXISTS %s" % name)


def test_single_role_rotation(pg, moto, roles, run_playbook):
    given = "Given-Password-4242-abcdef"
    run = run_playbook(
        harness.play(
            rotate(pg, moto, "Check", role="rot_app", generate=True, secret_id=SINGLE, check_mode=True),
            rotate(pg, moto, "Rotate", role="rot_app", generate=True, secret_id=SINGLE),
            pg=pg,
        ),
        verbosity=2,
    ).assert_ok()
    check = run.task("Check")["result"]
    assert check["changed"] and check["verified"] is False and "secret_arn" not in check
    res = run.task("Rotate")["result"]
    assert res["changed"] and res["verified"] is True and res["role"] == "rot_app"
    stored = secret(moto, SINGLE)
    assert stored["username"] == "rot_app" and stored["port"] == pg.port and len(stored["password"]) == 32
    assert can_login(pg, "rot_app", stored["password"])
    assert not can_login(pg, "rot_app", "Initial-Password-0001"), "the old password still works"
    # Only a SCRAM verifier reached the server, and no password is in any output.
    verifier = pg.query("SELECT rolpassword FROM pg_authid WHERE rolname = 'rot_app'")[0][0]
    assert verifier.startswith("SCRAM-SHA-256$")
    assert stored["password"] not in run.stdout + run.stderr + json.dumps(run.results)
    assert verifier not in json.dumps(run.results)

    # A given password: the first run rotates, the second finds nothing to do.
    play = harness.play(rotate(pg, moto, "Given", role="rot_app", password=given, secret_id=SINGLE), pg=pg)
    first = run_playbook(play).assert_ok()
    assert first.task("Given")["result"]["changed"] is True
    again = run_playbook(play).assert_ok()
    assert again.task("Given")["result"]["changed"] is False
    assert secret(moto, SINGLE)["password"] == given and can_login(pg, "rot_app", given)
    assert given not in first.stdout + first.stderr + json.dumps(first.results)


def test_two_phase_rotation_and_revoke(pg, moto, roles, run_playbook):
    def step(name, revoke=False):
        run = run_playbook(
            harness.play(
                rotate(
                    pg,
                    moto,
                    name,
                    role="rot_blue",
                    alternate_role="rot_green",
                    generate=True,
                    secret_id=TWO,
                    revoke_old=revoke,
                ),
                pg=pg,
            )
        ).assert_ok()
        return run.task(name)["result"], secret(moto, TWO)

    first, s1 = step("First")
    assert first["role"] == "rot_blue" and s1["username"] == "rot_blue"
    second, s2 = step("Second")
    assert (
        second["role"] == "rot_green" and second["previous_role"] == "rot_blue" and second["revoked"] is None
    )
    assert s2["username"] == "rot_green" and can_login(pg, "rot_green", s2["password"])
    assert can_login(pg, "rot_blue", s1["password"]), "the old role must keep working until revoke_old"
    third, s3 = step("Third", revoke=True)
    assert third["role"] == "rot_blue" and third["revoked"] == "rot_green"
    assert can_login(pg, "rot_blue", s3["password"])
    assert not can_login(pg, "rot_green", s2["password"]), "revoke_old left the old password working"


def test_rotate_credentials_playbook(pg, moto, roles, run_playbook, workdir):
    extra = dict(
        dbarch_target="localhost",
        dbarch_login_host=pg.host,
        dbarch_login_port=pg.port,
        dbarch_login_user=pg.user,
        dbarch_login_password=pg.password,
        dbarch_login_db="postgres",
        rotate_credentials=[{"role": "rot_app", "secret_id": SINGLE}],
        rotate_aws_endpoint_url=moto,
        rotate_aws_region="us-east-1",
        rotate_reports_dir=workdir,
    )
    run = run_playbook(
        harness.REPO_ROOT / "playbooks" / "rotate_credentials.yml",
        extra_vars=extra,
        env=harness.S3_CREDENTIALS,
    ).assert_ok()
    stored = secret(moto, SINGLE)
    assert can_login(pg, "rot_app", stored["password"])
    with open(os.path.join(workdir, "localhost", "rotate_credentials.json")) as fh:
        summary = fh.read()
    assert json.loads(summary)["rotated"][0]["verified"] is True
    assert stored["password"] not in summary + run.stdout + run.stderr
