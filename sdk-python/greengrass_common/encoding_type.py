"""Values of ``FunctionConfiguration.EncodingType``."""


class EncodingType(object):
    JSON = 'json'
    BINARY = 'binary'
