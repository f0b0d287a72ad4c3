"""The asyncio front: ``AsyncEventStore`` and its parts.

Flow modules here are the one implementation of each flow; ``tests/unasync.py``
generates the sync front's modules in ``eventstore._redis`` from them. Backend modules
(``io``, ``batch``, ``clients``, ``mux``...) are hand-written I/O, with sync twins of the
same names in ``eventstore._redis``.
"""
