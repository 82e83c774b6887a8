"""Moving media over HTTP: the farm's WebDAV store, presigned URLs, any HTTP server.

The agent and the CLI share this package. It knows the upload and download protocols and
how to tell a refusal (for good) from an unavailable server (try again later); retrying is
the caller's policy. It imports only ground modules and requests.
"""
