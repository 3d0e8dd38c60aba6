"""The IPC client that the published ``greengrasssdk`` talks through.

In the original core this was HTTP to localhost:8000; in ggcore it calls the
core directly through the runtime's native module.
"""
