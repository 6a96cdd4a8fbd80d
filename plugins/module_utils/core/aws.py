# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One boto3 client factory for every AWS-facing engine of the collection (RDS, Route 53, Secrets
Manager, the S3 backup repository): region, endpoint_url, keys, session token and profile, with the
standard AWS environment variables as defaults, and one way to turn a botocore error into a
DbarchError.

Plain Python, no Ansible imports. ``AWS_ARGSPEC`` is the shared option spec (doc fragment
``dbarch.postgresql.aws``); modules take it with ``DbarchModule(aws_options=True)`` and build their
client with ``module.aws_client(service)``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

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


class AwsError(DbarchError):
    """An AWS call failed, or boto3 is missing; the message says which call and why."""

    def __init__(self, message, code=None):
        super(AwsError, self).__init__(message)
        self.code = code


# The shared options (the names of amazon.aws; defaults from the standard environment variables).
AWS_ARGSPEC = dict(
    region=dict(type="str", aliases=["aws_region"]),
    endpoint_url=dict(type="str", aliases=["aws_endpoint_url"]),
    aws_access_key_id=dict(type="str", no_log=True, aliases=["access_key"]),
    aws_secret_access_key=dict(type="str", no_log=True, aliases=["secret_key"]),
    aws_session_token=dict(type="str", no_log=True, aliases=["session_token"]),
    profile=dict(type="str", aliases=["aws_profile"]),
)

AWS_OPTIONS = tuple(AWS_ARGSPEC)


def options_of(params):
    """The shared AWS options out of a module's parameters (for ``client(**options)``)."""
    return {name: params.get(name) for name in AWS_OPTIONS}


# option -> environment variables read when the option is not given (first set wins)
ENVIRONMENT = {
    "region": ("AWS_REGION", "AWS_DEFAULT_REGION"),
    "endpoint_url": ("AWS_ENDPOINT_URL",),
    "aws_access_key_id": ("AWS_ACCESS_KEY_ID",),
    "aws_secret_access_key": ("AWS_SECRET_ACCESS_KEY",),
    "aws_session_token": ("AWS_SESSION_TOKEN",),
    "profile": ("AWS_PROFILE",),
}


def resolve(environ=None, **options):
    """The options with the environment's values where an option is not given."""
    environ = os.environ if environ is None else environ
    out = {}
    for name in AWS_OPTIONS:
        value = options.get(name)
        if value in (None, ""):
            value = next((environ[v] for v in ENVIRONMENT[name] if environ.get(v)), None)
        out[name] = value
    if bool(out["aws_access_key_id"]) != bool(out["aws_secret_access_key"]):
        raise AwsError("give both aws_access_key_id and aws_secret_access_key, or neither")
    return out


def client(service, what="this module", environ=None, max_attempts=5, default_region="us-east-1", **options):
    """A boto3 client of ``service`` from the shared options (see ``resolve``); ``max_attempts``
    for botocore's standard retry mode (throttling, transient errors). Without a region (option or
    environment) the client uses ``default_region``; None leaves it to boto3 (the profile's
    configuration, and S3's own region handling)."""
    if not HAS_BOTO3:
        raise AwsError(
            "%s needs boto3 for the Python that runs it (apt-get install python3-boto3, or pip install boto3)"
            % what
        )
    opts = resolve(environ=environ, **options)
    try:
        session = boto3.session.Session(
            aws_access_key_id=opts["aws_access_key_id"],
            aws_secret_access_key=opts["aws_secret_access_key"],
            aws_session_token=opts["aws_session_token"],
            region_name=opts["region"] or default_region,
            profile_name=opts["profile"] if not opts["aws_access_key_id"] else None,
        )
        return session.client(
            service,
            endpoint_url=opts["endpoint_url"],
            config=BotoConfig(retries={"max_attempts": max_attempts, "mode": "standard"}),
        )
    except BotoCoreError as exc:
        raise AwsError("AWS %s client: %s" % (service, exc)) from None


def error(what, exc):
    """An AwsError for a failed call (``what`` names the call and its object)."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return AwsError(
            "%s failed: %s: %s" % (what, err.get("Code"), err.get("Message")), code=err.get("Code")
        )
    return AwsError("%s failed: %s" % (what, exc))


def call(api, method, what=None, **kwargs):
    """``api.<method>(**kwargs)``; a botocore error becomes an AwsError naming the call."""
    try:
        return getattr(api, method)(**kwargs)
    except (BotoCoreError, ClientError) as exc:
        raise error(what or method, exc) from None


# What a boto3 call raises: an error answer (ClientError) or a transport/credentials failure.
BOTO_ERRORS = (BotoCoreError, ClientError)


def error_code(exc):
    """AWS's error code of a ClientError (None for any other failure)."""
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code")
    return None


def describe(what, exc):
    """'<what> failed: <Code>: <Message>' for a boto3 error (the text of ``error``)."""
    return str(error(what, exc))
