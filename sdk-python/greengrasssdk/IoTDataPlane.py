"""``client('iot-data')``: publish through the group's subscriptions, and the
local shadow service."""
import json
import logging

import _ggcore

customer_logger = logging.getLogger(__name__)


class ShadowError(Exception):
    pass


def _payload_bytes(payload):
    if payload is None:
        return b''
    if isinstance(payload, str):
        return payload.encode('utf-8')
    if hasattr(payload, 'read'):
        return _payload_bytes(payload.read())
    return bytes(payload)


class Client(object):
    def __init__(self, *args, **kwargs):
        pass

    def _required(self, name, kwargs):
        if name not in kwargs:
            raise ValueError('Parameter "{}" is a required parameter but was not provided.'.format(name))
        return kwargs[name]

    def publish(self, **kwargs):
        """Publishes ``payload`` on ``topic``; ``queueFullPolicy`` is ``''``,
        ``'BestEffort'`` or ``'AllOrException'``. The ``qos`` argument of old
        examples is accepted and ignored."""
        topic = self._required('topic', kwargs)
        policy = kwargs.get('queueFullPolicy', '')
        if policy == 'AllOrException':
            policy = 'AllOrError'
        elif policy not in ('', 'BestEffort'):
            raise ValueError('Invalid value for queueFullPolicy: {}'.format(policy))
        try:
            _ggcore.publish(topic, _payload_bytes(kwargs.get('payload', b'')), policy, '')
        except _ggcore.HostError as e:
            raise Exception('Failed to publish to {}: {}'.format(topic, e))

    def get_thing_shadow(self, **kwargs):
        return self._shadow('get', self._required('thingName', kwargs), b'')

    def update_thing_shadow(self, **kwargs):
        thing = self._required('thingName', kwargs)
        return self._shadow('update', thing, _payload_bytes(self._required('payload', kwargs)))

    def delete_thing_shadow(self, **kwargs):
        return self._shadow('delete', self._required('thingName', kwargs), b'')

    def _shadow(self, op, thing, payload):
        try:
            response = _ggcore.shadow(op, thing, payload)
        except _ggcore.HostError as e:
            raise ShadowError('Request for shadow state returned FunctionError "Unhandled" with error payload "{}"'.format(e))
        try:
            document = json.loads(response.decode('utf-8'))
        except ValueError:
            document = {}
        if isinstance(document, dict) and 'code' in document and 'message' in document:
            raise ShadowError('Request for shadow state returned error code {} with message "{}"'.format(document['code'], document['message']))
        return {'payload': response}
