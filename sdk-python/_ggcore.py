"""Stand-in for ggcore's native module ``_ggcore`` outside a function.

Inside a function the Python plugin registers the real module (in
``sys.modules``, which wins over this file), and every SDK call goes through
it to the core. Outside — a unit test importing ``greengrasssdk`` with
``PYTHONPATH=$(ggcore sdk path python)`` — the SDK still imports, and a call
that would need the core raises ``HostError`` saying so, as AWS's SDK failed
outside Greengrass. Log lines go to stderr.
"""
import sys


class HostError(Exception):
    """An error answered by the core: ``(code, message)``."""


def _outside(*_args, **_kwargs):
    raise HostError('Unavailable', 'not running in a ggcore function: there is no core to call')


publish = invoke = shadow = get_secret = _outside

_LEVELS = ('DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL')


def log(level, message):
    name = _LEVELS[level] if 0 <= level < len(_LEVELS) else str(level)
    sys.stderr.write('[{}] {}\n'.format(name, message))
