"""Greengrass runtime modules that the published ``greengrasssdk`` imports.

ggcore provides them so that a function bundling any published SDK version
(1.0 to 1.6.1) runs unchanged.
"""
