"""The runtime's log handler: records go to the function's log file."""
import logging

import _ggcore
from ggcore_runtime import level_number as _level


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
