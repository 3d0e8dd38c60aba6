def client(client_type, *args, **kwargs):
    """Returns a client for ``'lambda'``, ``'iot-data'`` or ``'secretsmanager'``."""
    if client_type == 'lambda':
        from .Lambda import Client
    elif client_type == 'iot-data':
        from .IoTDataPlane import Client
    elif client_type == 'secretsmanager':
        from .SecretsManager import Client
    else:
        raise Exception('Client type {} is not recognized.'.format(repr(client_type)))
    return Client(*args, **kwargs)
