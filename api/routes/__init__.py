"""The HTTP API's routes, a router per resource; :mod:`api.routes.deps` is what they share.

Handlers are plain functions run in the server's thread pool; the work per request is a short
database transaction. Answers are ``async``: most are one statement on the event loop
(:mod:`api.one_statement`). Handlers return the service's responses (:mod:`api.responses`) as
they are: they are annotated ``Any`` so that FastAPI builds no response model, which would
validate every response a second time.
"""
