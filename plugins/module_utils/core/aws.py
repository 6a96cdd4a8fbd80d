# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One boto3 client factory for the collection's AWS modules (Route 53, Secrets Manager, ...).

The AWS options every AWS module takes (``AWS_ARGSPEC``: region, endpoint_url for a stand-in
such as moto's server, access key, secret key, session token with no_log), one boto3 session
per client, standard retries, and one way to turn a boto3 error into a DbarchError message
(the AWS error code and message, never the credentials). Plain Python, no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError

try:
    import boto3
    from botocore.config import Config as BotoConfig
    from botocore.exceptions import BotoCoreError, ClientError

    HAS_BOTO3 = True
except ImportError:  # pragma: no cover - exercised on hosts without boto3
    boto3 = None
    HAS_BOTO3 = False

    class BotoCoreError(Exception):
        pass

    class ClientError(Exception):
        pass


AWS_ARGSPEC = dict(
    region=dict(type="str"),
    endpoint_url=dict(type="str"),
    aws_access_key_id=dict(type="str", no_log=True),
    aws_secret_access_key=dict(type="str", no_log=True),
    aws_session_token=dict(type="str", no_log=True),
)

AWS_OPTIONS = tuple(AWS_ARGSPEC)

# What a boto3 call raises: an error answer (ClientError) or a transport/credentials failure.
BOTO_ERRORS = (BotoCoreError, ClientError)


class AwsError(DbarchError):
    """An AWS call failed (or boto3 is missing); the message names the call and AWS's reason."""


def client(
    service,
    endpoint_url=None,
    region=None,
    aws_access_key_id=None,
    aws_secret_access_key=None,
    aws_session_token=None,
    who="this module",
    error=AwsError,
):
    """A boto3 client for ``service``; ``error`` (a DbarchError class) when boto3 is missing."""
    if not HAS_BOTO3:
        raise error(
            "%s needs boto3 for the Python that runs the module "
            "(apt-get install python3-boto3, or pip install boto3)" % who
        )
    session = boto3.session.Session(
        aws_access_key_id=aws_access_key_id,
        aws_secret_access_key=aws_secret_access_key,
        aws_session_token=aws_session_token,
        region_name=region or "us-east-1",
    )
    return session.client(
        service,
        endpoint_url=endpoint_url,
        config=BotoConfig(retries={"max_attempts": 3, "mode": "standard"}),
    )


def error_code(exc):
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code")
    return None


def describe(what, exc):
    """'<what> failed: <Code>: <Message>' for a boto3 error."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return "%s failed: %s: %s" % (what, err.get("Code"), err.get("Message"))
    return "%s failed: %s" % (what, exc)
