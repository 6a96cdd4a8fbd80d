# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The AWS client options (core/aws.py AWS_ARGSPEC), named as in amazon.aws.
    DOCUMENTATION = r"""
options:
  region:
    description:
      - AWS region. Default from E(AWS_REGION) or E(AWS_DEFAULT_REGION), else C(us-east-1).
    type: str
    aliases: [aws_region]
  endpoint_url:
    description:
      - AWS endpoint, for a stand-in such as moto's server (C(http://127.0.0.1:5000)). Default from
        E(AWS_ENDPOINT_URL), else AWS.
    type: str
    aliases: [aws_endpoint_url]
  aws_access_key_id:
    description:
      - AWS access key. Default from E(AWS_ACCESS_KEY_ID), else the standard AWS credential chain
        (C(~/.aws/credentials), instance profile).
    type: str
    aliases: [access_key]
  aws_secret_access_key:
    description:
      - AWS secret key, with O(aws_access_key_id). Default from E(AWS_SECRET_ACCESS_KEY). Never shown
        in output or logs.
    type: str
    aliases: [secret_key]
  aws_session_token:
    description:
      - Session token of temporary credentials. Default from E(AWS_SESSION_TOKEN). Never shown in
        output or logs.
    type: str
    aliases: [session_token]
  profile:
    description:
      - Named profile of the AWS configuration files. Default from E(AWS_PROFILE). Ignored when keys
        are given.
    type: str
    aliases: [aws_profile]
requirements:
  - boto3 (C(python3-boto3) on Debian/Ubuntu)
"""
