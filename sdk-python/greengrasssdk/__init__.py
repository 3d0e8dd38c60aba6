"""ggcore's Greengrass Core SDK for Python.

The same API as the published ``greengrasssdk`` (``client('iot-data')``,
``client('lambda')``, ``client('secretsmanager')``), calling the core directly
through the runtime's native module.
"""
from .client import client
from .Lambda import StreamingBody

__version__ = '1.6.1'
INTERFACE_VERSION = '1.5'
