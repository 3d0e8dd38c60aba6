"""The Python side of ggcore's Python runtime plugin.

The plugin (Rust, embedding CPython) calls ``prepare`` once per process (in the
zygote, before instances are forked), ``start`` once per instance (module-level
code of the handler runs then), and ``Invoker.invoke`` for every invocation.
"""
import base64
import gc
import importlib
import json
import logging
import os
import sys
import time
import traceback

# Modules imported before the process becomes the function's user, so that they
# are loaded even where the function's user cannot read the Python install.
PRELOAD = (
    'abc', 'argparse', 'array', 'ast', 'asyncio', 'base64', 'binascii', 'bisect', 'calendar', 'codecs',
    'collections', 'concurrent.futures', 'contextlib', 'copy', 'csv', 'dataclasses', 'datetime', 'decimal',
    'enum', 'errno', 'fnmatch', 'fractions', 'functools', 'glob', 'gzip', 'hashlib', 'heapq', 'hmac',
    'html', 'http.client', 'importlib', 'importlib.util', 'inspect', 'io', 'ipaddress', 'itertools', 'json',
    'logging', 'logging.handlers', 'math', 'numbers', 'operator', 'os', 'pathlib', 'pickle', 'platform',
    'pprint', 'queue', 'random', 're', 'secrets', 'select', 'selectors', 'shlex', 'shutil', 'signal',
    'socket', 'ssl', 'stat', 'string', 'struct', 'subprocess', 'tempfile', 'textwrap', 'threading', 'time',
    'timeit', 'traceback', 'typing', 'unicodedata', 'urllib', 'urllib.error', 'urllib.parse',
    'urllib.request', 'uuid', 'warnings', 'weakref', 'zipfile', 'zlib', 'email', 'email.message',
    'encodings.idna', 'encodings.latin_1', 'encodings.ascii',
)

# SDK packages that a function may bring in its own code directory.
_SDK_PACKAGES = ('greengrasssdk',)

# Python logging levels to the core's level numbers (0 DEBUG .. 4 FATAL):
# the one table; greengrass_common.common_log_appender uses it too.
_LEVELS = ((logging.CRITICAL, 4), (logging.ERROR, 3), (logging.WARNING, 2), (logging.INFO, 1))


def level_number(levelno):
    """The core's level number for a Python logging level."""
    for threshold, value in _LEVELS:
        if levelno >= threshold:
            return value
    return 0


def prepare():
    """Loads what every instance needs; nothing that depends on the function.

    Run once in the zygote; instances are forked from it, so everything loaded
    here is shared (copy-on-write) by all of them.
    """
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:
            pass
    # ggcore's own SDK reads nothing from the environment at import: load it
    # now (start() drops it when a function brings its own greengrasssdk).
    for name in ('greengrasssdk', 'greengrasssdk.Lambda', 'greengrasssdk.IoTDataPlane', 'greengrasssdk.SecretsManager'):
        try:
            importlib.import_module(name)
        except Exception:
            pass
    # Objects that exist now are never collected: the collector then leaves
    # them alone in forked instances, instead of touching (and so copying)
    # every page of the shared heap on its first pass.
    gc.collect()
    gc.freeze()


class _CoreLogHandler(logging.Handler):
    """Python logging records go to the function's log, with their level."""

    def emit(self, record):
        try:
            import _ggcore
            _ggcore.log(level_number(record.levelno), self.format(record))
        except Exception:
            self.handleError(record)


class ClientContext(object):
    def __init__(self, document):
        self.client = document.get('client')
        self.custom = document.get('custom') or document.get('Custom') or {}
        self.env = document.get('env')

    def __repr__(self):
        return 'ClientContext(custom={!r})'.format(self.custom)


class Context(object):
    """What ``handler(event, context)`` receives, shaped like Greengrass's context."""

    def __init__(self, invoker, invocation_id, client_context, deadline_ms):
        self.function_name = invoker.function_name
        self.function_version = invoker.function_version
        self.invoked_function_arn = invoker.function_arn
        self.memory_limit_in_mb = invoker.memory_limit_in_mb
        self.aws_request_id = invocation_id
        self.log_group_name = '/aws/greengrass/Lambda/{}/{}/{}'.format(invoker.region, invoker.account, invoker.function_name)
        self.log_stream_name = 'ggcore'
        self.identity = None
        self.client_context = ClientContext(client_context) if client_context is not None else None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        return max(0, int(self._deadline_ms - time.time() * 1000))


class Invoker(object):
    def __init__(self, handler, function_arn, binary, memory_limit_in_mb):
        self.handler = handler
        self.function_arn = function_arn
        parts = function_arn.split(':')
        self.region = parts[3] if len(parts) > 3 else ''
        self.account = parts[4] if len(parts) > 4 else ''
        self.function_name = parts[6] if len(parts) > 6 else function_arn
        self.function_version = parts[7] if len(parts) > 7 else '$LATEST'
        self.binary = binary
        self.memory_limit_in_mb = memory_limit_in_mb
        self.log = logging.getLogger('ggcore.runtime')

    def _event(self, payload):
        if self.binary:
            return payload
        if not payload:
            return None
        try:
            return json.loads(payload.decode('utf-8'))
        except ValueError:
            self.log.warning('EncodingType is json but the payload is not JSON; passing it as %s',
                             'text' if _is_text(payload) else 'bytes')
            return payload.decode('utf-8') if _is_text(payload) else payload

    def invoke(self, payload, invocation_id, client_context_json, deadline_ms):
        """Returns (0, result bytes) or (1, error document bytes)."""
        client_context = None
        if client_context_json:
            try:
                client_context = json.loads(client_context_json)
            except ValueError:
                client_context = {}
        context = Context(self, invocation_id, client_context, deadline_ms)
        try:
            result = self.handler(self._event(payload), context)
        except Exception as e:
            self.log.error('%s', ''.join(traceback.format_exception(type(e), e, e.__traceback__.tb_next)).rstrip())
            return 1, _error_document(e)
        try:
            return 0, _result_bytes(result)
        except Exception as e:
            self.log.error('the handler returned a value that cannot be serialised: %s', e)
            return 1, _error_document(e)


def _is_text(payload):
    try:
        payload.decode('utf-8')
        return True
    except UnicodeDecodeError:
        return False


def _result_bytes(result):
    if isinstance(result, (bytes, bytearray, memoryview)):
        return bytes(result)
    return json.dumps(result).encode('utf-8')


def _error_document(e):
    return json.dumps({
        'errorMessage': str(e),
        'errorType': type(e).__name__,
        # The runtime's own frame (Invoker.invoke) is left out.
        'stackTrace': traceback.format_tb(e.__traceback__.tb_next if e.__traceback__ else None),
    }).encode('utf-8')


def start(handler, code_dir, sdk_dirs, environment, function_arn, binary, memory_limit_kb):
    """Becomes the function: environment, path, logging, then imports the
    handler's module (its module-level code runs once, here)."""
    os.environ.clear()
    os.environ.update(environment)
    try:
        os.chdir(code_dir)
    except OSError:
        pass
    # The function's own directory first: a bundled greengrasssdk wins over ours.
    base = [p for p in sys.path if p not in sdk_dirs and p not in ('', code_dir)]
    sys.path[:] = [code_dir] + list(sdk_dirs) + base
    # Modules that read the environment at import are loaded again for this
    # function; ggcore's SDK is replaced when the function brings its own.
    own_sdk = [p for p in _SDK_PACKAGES if os.path.exists(os.path.join(code_dir, p))]
    for name in list(sys.modules):
        top = name.split('.')[0]
        if top in own_sdk or top in ('greengrass_common', 'greengrass_ipc_python_sdk'):
            del sys.modules[name]
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(line_buffering=True)
        except Exception:
            pass
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler_obj = _CoreLogHandler()
    handler_obj.setFormatter(logging.Formatter('%(name)s: %(message)s'))
    root.addHandler(handler_obj)
    root.setLevel(logging.INFO)

    if '.' not in handler:
        raise ValueError('Executable {!r} is not module.function'.format(handler))
    module_name, function_name = handler.rsplit('.', 1)
    module = importlib.import_module(module_name)
    func = getattr(module, function_name, None)
    if func is None or not callable(func):
        raise AttributeError('module {!r} has no function {!r}'.format(module_name, function_name))
    return Invoker(func, function_arn, binary, max(1, memory_limit_kb // 1024))
