"""Shared core of the five ingestion functions.

Data flows one way: source event -> records (``sources``) -> validated requests (``records``, ``validation``)
-> calls (``batching``, ``delivery``) -> outcome (``outcome``, ``rejects``) -> batch response. ``pipeline`` keeps
that order visible; ``functions/<entity>/handler.py`` only binds an entity to it.
"""
