"""``dlq serve``: the HTTP service (JSON API, OpenAPI docs, web console).

An app factory, :func:`create_app`, with one router per area (entries,
redrives, maintenance, test entries, console pages) and the authentication
(:mod:`dlq._http.auth`) and error mapping (:mod:`dlq._http.errors`) they share.
Every route is a thin adapter over :class:`~dlq.AsyncDLQService`'s public
methods.
"""

from dlq._http.app import create_app

__all__ = ["create_app"]
