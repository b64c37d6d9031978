"""The mock Cisco ASA headend: configuration, admin console, MTU model, sessiondb, syslog.

Configuration (:mod:`tunnelswarm.asa.config`) is ASA CLI syntax, read from a file with
:func:`~tunnelswarm.asa.config.parse_config` and changed live through
:class:`~tunnelswarm.asa.console.AdminConsole`; changes come out as typed
:class:`~tunnelswarm.asa.config.ConfigEvent` values.
"""

from __future__ import annotations
