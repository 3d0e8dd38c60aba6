"""``IPCClient`` as the published Greengrass Core SDK for Python uses it.

``post_work`` to the router function is a publish, to the shadow function a
shadow request, to the secrets function a secret request, and to any other
function an invoke; ``get_work_result`` returns what the request answered.
Everything goes to the core through ``_ggcore`` (no HTTP, no extra hop).
"""
import base64
import binascii
import collections
import json
import os
import threading
import uuid

import _ggcore

WorkItem = collections.namedtuple('WorkItem', ['invocation_id', 'payload', 'client_context'])
GetWorkResultOutput = collections.namedtuple('GetWorkResultOutput', ['payload', 'func_err'])

_ROUTER = 'arn:aws:lambda:::function:GGRouter'
_SHADOW = 'arn:aws:lambda:::function:GGShadowService'
_SECRETS = 'arn:aws:lambda:::function:GGSecretManager'

# Results of requests answered synchronously, until get_work_result takes them.
_RESULTS_LIMIT = 10000


class IPCException(Exception):
    pass


def _system(arn, env_name, default):
    configured = os.getenv(env_name) or default
    return arn == configured or arn.split(':')[:7] == configured.split(':')[:7]


def _as_bytes(payload):
    if payload is None:
        return b''
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return bytes(payload)
    if isinstance(payload, str):
        return payload.encode('utf-8')
    if hasattr(payload, 'read'):
        return _as_bytes(payload.read())
    raise IPCException('payload must be bytes, str or a readable file, not {}'.format(type(payload).__name__))


def _decode_context(client_context):
    if not client_context:
        return {}
    if isinstance(client_context, (bytes, bytearray)):
        client_context = client_context.decode('utf-8')
    try:
        return json.loads(base64.b64decode(client_context).decode('utf-8'))
    except (binascii.Error, ValueError) as e:
        raise IPCException('client context is not base64 of a JSON object: {}'.format(e))


class IPCClient(object):
    """Talks to the core. ``endpoint`` and ``port`` are accepted and ignored."""

    def __init__(self, endpoint='localhost', port=8000):
        self.endpoint = endpoint
        self.port = port
        self._results = collections.OrderedDict()
        self._lock = threading.Lock()

    def _keep(self, payload, func_err):
        invocation_id = str(uuid.uuid4())
        with self._lock:
            self._results[invocation_id] = GetWorkResultOutput(payload, func_err)
            while len(self._results) > _RESULTS_LIMIT:
                self._results.popitem(last=False)
        return invocation_id

    def post_work(self, function_arn, input_bytes, client_context, invocation_type='RequestResponse'):
        payload = _as_bytes(input_bytes)
        try:
            if _system(function_arn, 'ROUTER_FUNCTION_ARN', _ROUTER):
                custom = _decode_context(client_context).get('custom', {})
                subject = custom.get('subject')
                if not subject:
                    raise IPCException('a publish needs custom.subject (the topic) in its client context')
                _ggcore.publish(subject, payload, custom.get('queueFullPolicy', ''), custom.get('source') or '')
                return self._keep(b'', '')
            if _system(function_arn, 'SHADOW_FUNCTION_ARN', _SHADOW):
                subject = _decode_context(client_context).get('custom', {}).get('subject', '')
                parts = subject.split('/')
                if len(parts) != 5 or parts[0] != '$aws' or parts[1] != 'things' or parts[3] != 'shadow':
                    raise IPCException('not a shadow request topic: {}'.format(subject))
                try:
                    return self._keep(_ggcore.shadow(parts[4], parts[2], payload), '')
                except _ggcore.HostError as e:
                    return self._keep(json.dumps({'errorMessage': e.args[1] if len(e.args) > 1 else str(e)}).encode(), 'Unhandled')
            if _system(function_arn, 'SECRETS_MANAGER_FUNCTION_ARN', _SECRETS):
                try:
                    return self._keep(_ggcore.get_secret(payload), '')
                except _ggcore.HostError as e:
                    return self._keep(json.dumps({'Status': 500, 'Message': e.args[1] if len(e.args) > 1 else str(e)}).encode(), '')
            context = client_context.decode('utf-8') if isinstance(client_context, (bytes, bytearray)) else (client_context or '')
            invocation_id, result, func_err = _ggcore.invoke(function_arn, '', invocation_type, context, payload)
            if invocation_type == 'Event':
                return invocation_id
            with self._lock:
                self._results[invocation_id] = GetWorkResultOutput(result, func_err)
            return invocation_id
        except _ggcore.HostError as e:
            raise IPCException(str(e))

    def get_work_result(self, function_arn, invocation_id):
        with self._lock:
            result = self._results.pop(invocation_id, None)
        if result is None:
            raise IPCException('no result for invocation {}'.format(invocation_id))
        return result

    def get_work(self, function_arn):
        raise IPCException('get_work is not used in ggcore: the runtime receives work from the core directly')

    def post_work_result(self, function_arn, work_result, invocation_id):
        raise IPCException('post_work_result is not used in ggcore: the runtime returns results to the core directly')

    def post_handler_err(self, function_arn, handler_err, invocation_id):
        raise IPCException('post_handler_err is not used in ggcore: the runtime returns errors to the core directly')
