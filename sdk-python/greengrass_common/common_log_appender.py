"""The runtime's log handler: records go to the function's log file."""
import logging

import _ggcore

_LEVELS = ((logging.CRITICAL, 4), (logging.ERROR, 3), (logging.WARNING, 2), (logging.INFO, 1))


def _level(levelno):
    for threshold, level in _LEVELS:
        if levelno >= threshold:
            return level
    return 0


class LocalCloudwatchLogHandler(logging.Handler):
    """Sends log records to the core, which writes them with time stamp and level."""

    def __init__(self, component_type='Lambda', component_name=''):
        logging.Handler.__init__(self)
        self.component_type = component_type
        self.component_name = component_name

    def emit(self, record):
        try:
            _ggcore.log(_level(record.levelno), self.format(record))
        except Exception:
            self.handleError(record)

    def write(self, data):
        """Accepts print-style writes, recorded at DEBUG as the original does."""
        if data and data.strip():
            _ggcore.log(0, data.rstrip('\n'))

    def flush(self):
        pass


local_cloudwatch_handler = LocalCloudwatchLogHandler()
