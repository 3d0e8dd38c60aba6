"""``client('secretsmanager')``: secrets kept by the core."""
import json
from datetime import datetime

import _ggcore


class SecretsManagerError(Exception):
    pass


class Client(object):
    def __init__(self, *args, **kwargs):
        pass

    def get_secret_value(self, **kwargs):
        if 'SecretId' not in kwargs:
            raise ValueError('Parameter "SecretId" is a required parameter but was not provided.')
        version_id = kwargs.get('VersionId', '')
        version_stage = kwargs.get('VersionStage', '')
        if version_id:
            raise SecretsManagerError('Query by VersionId is not yet supported')
        request = {'SecretId': kwargs['SecretId']}
        if version_stage:
            request['VersionStage'] = version_stage
        try:
            response = _ggcore.get_secret(json.dumps(request).encode('utf-8'))
        except _ggcore.HostError as e:
            raise SecretsManagerError(str(e))
        document = json.loads(response.decode('utf-8'))
        if 'Status' in document and 'Message' in document:
            raise SecretsManagerError('Request for secret value returned error code {} with message {}'.format(document['Status'], document['Message']))
        if 'CreatedDate' in document:
            document['CreatedDate'] = datetime.fromtimestamp(document['CreatedDate'] / 1000)
        return document
