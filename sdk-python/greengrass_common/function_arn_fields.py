"""Parsing and building Lambda function ARNs, as the Greengrass runtime does.

Both the pre-1.9 helper (``build_arn_string``) and the 1.9+ helpers
(``unqualified_arn``, ``build_function_arn``) exist, so every published SDK
version works.
"""
import re

_ARN = re.compile(
    r'^arn:(?P<partition>[a-z0-9-]+):lambda:(?P<region>[a-z0-9-]*):(?P<account_id>[0-9]*):function:'
    r'(?P<name>[A-Za-z0-9_-]+)(:(?P<qualifier>\$LATEST|[A-Za-z0-9_-]+))?$'
)


class FunctionArnFields(object):
    """The parts of a function ARN: ``region``, ``account_id``, ``name``, ``qualifier``."""

    def __init__(self, function_arn):
        match = _ARN.match(function_arn or '')
        if match is None:
            raise ValueError('Cannot parse given function ARN: {}'.format(function_arn))
        self.partition = match.group('partition')
        self.region = match.group('region')
        self.account_id = match.group('account_id')
        self.name = match.group('name')
        self.qualifier = match.group('qualifier')
        self.unqualified_arn = 'arn:{}:lambda:{}:{}:function:{}'.format(
            self.partition, self.region, self.account_id, self.name)

    @staticmethod
    def build_arn_string(region, account_id, name, qualifier=None):
        arn = 'arn:aws:lambda:{}:{}:function:{}'.format(region, account_id, name)
        return arn + ':' + qualifier if qualifier else arn

    @staticmethod
    def build_function_arn(unqualified_arn, qualifier=None):
        return unqualified_arn + ':' + qualifier if qualifier else unqualified_arn
