"""Built-in client profiles, one TOML file each (loaded by :mod:`tunnelswarm.config.profile`).

This package holds data only; the ``__init__`` makes it importable for
:mod:`importlib.resources`.
"""
