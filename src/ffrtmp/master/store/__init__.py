"""The master's durable job store: SQLite (embedded) or PostgreSQL (several masters).

``protocol`` says what callers may ask, ``errors`` what the store refuses, ``factory`` opens
one by URL; the SQL lives in the modules in between. This file imports nothing, so no module
of the package depends on the package that assembles it.
"""
