"""``client('lambda')``: invoke other functions of the group."""
import io
import logging
import re

import _ggcore

customer_logger = logging.getLogger(__name__)

_BASE64 = re.compile(r'^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2}==)$')
_QUALIFIED = re.compile(r'^(arn:[^:]+:lambda:[^:]*:[^:]*:function:[^:]+)(?::([^:]+))?$')


class InvocationException(Exception):
    pass


class StreamingBody(object):
    """The result payload, readable like botocore's StreamingBody."""

    def __init__(self, payload):
        self._raw_stream = io.BytesIO(payload)

    def read(self, amt=None):
        return self._raw_stream.read(amt)

    def close(self):
        self._raw_stream.close()


class Client(object):
    def __init__(self, endpoint='localhost', port=None):
        pass

    def invoke(self, **kwargs):
        """Invokes a function: ``FunctionName`` (required), ``InvocationType``
        (``RequestResponse`` or ``Event``), ``Payload`` (bytes), ``ClientContext``
        (base64 bytes), ``Qualifier``. Returns ``{'Payload': ..., 'FunctionError': ...}``."""
        if 'FunctionName' not in kwargs:
            raise ValueError('"FunctionName" argument of Lambda.Client.invoke is a required argument but was not provided.')
        match = _QUALIFIED.match(kwargs['FunctionName'])
        if match is None:
            raise ValueError('"FunctionName" must be a function ARN: {}'.format(kwargs['FunctionName']))
        arn_qualifier = match.group(2)
        qualifier = kwargs.get('Qualifier', '')
        if qualifier and arn_qualifier and qualifier != arn_qualifier:
            raise ValueError('The derived qualifier from the function name does not match the specified qualifier.')
        function_arn = match.group(1)
        final_qualifier = arn_qualifier or qualifier
        if final_qualifier:
            function_arn = function_arn + ':' + final_qualifier
        try:
            client_context = kwargs.get('ClientContext', b'').decode()
        except AttributeError:
            raise ValueError('"ClientContext" argument must be a byte string or support a decode method which returns a string')
        if client_context and not _BASE64.match(client_context):
            raise ValueError('"ClientContext" argument of Lambda.Client.invoke must be base64 encoded.')
        invocation_type = kwargs.get('InvocationType', 'RequestResponse')
        if invocation_type not in ('RequestResponse', 'Event'):
            raise ValueError('"InvocationType" must be RequestResponse or Event, not {}'.format(invocation_type))
        payload = kwargs.get('Payload', b'')
        if isinstance(payload, str):
            payload = payload.encode('utf-8')
        elif hasattr(payload, 'read'):
            payload = payload.read()
        try:
            _, result, function_error = _ggcore.invoke(function_arn, '', invocation_type, client_context, bytes(payload))
        except _ggcore.HostError as e:
            raise InvocationException('Failed to invoke function due to ' + str(e))
        if invocation_type == 'Event':
            return {'Payload': b'', 'FunctionError': ''}
        return {'Payload': result if function_error else StreamingBody(result), 'FunctionError': function_error}
