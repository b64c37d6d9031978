"""The mock ASA's admin console: a sans-IO, line-in/lines-out CLI state machine.

A transport (the later Trio SSH/telnet server) writes ``console.prompt + " "``, reads one
line, calls :meth:`AdminConsole.feed` and writes the returned lines; it echoes input
itself (except after the ``Password:`` prompt). The console never touches a socket.

Modes and prompts are the ASA's: ``ciscoasa>`` (user), ``Password:``, ``ciscoasa#``
(privileged), ``ciscoasa(config)#`` and the sub-modes ``(config-webvpn)``, ``(config-if)``,
``(config-group-policy)``, ``(config-group-webvpn)``, ``(config-tunnel-general)``,
``(config-tunnel-webvpn)``. ``exit`` leaves one level (logs off from exec/user mode),
``end`` returns to ``#``; a command that the current sub-mode does not know is tried in
the enclosing modes, and a match there moves the console to that mode (as on the ASA).
``show`` and ``write memory`` work in every privileged mode.

A rejected command returns the ASA's two lines -- a ``^`` under the first bad token,
aligned with the echoed ``prompt + " " + input`` line, then ``ERROR: % Invalid input
detected at '^' marker.`` -- and changes nothing.

Other modules add ``show`` commands with :meth:`AdminConsole.register_show` (or a
:class:`ShowRegistry` shared by several consoles): ``register_show("asp table socket",
handler)`` makes ``show asp table socket`` (and abbreviations such as ``sh asp tabl
sock``) call ``handler(config, extra_words)`` and print the lines it returns.
:meth:`ShowRegistry.register_command` adds any other privileged command with its own
grammar (``clear aaa local user lockout {all | username <name>}``): its handler acts on
the caller's runtime state and appends its output to ``ctx.out``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

from tunnelswarm.asa.config import (
    Args,
    AsaConfig,
    CliError,
    Command,
    CommandContext,
    ConfigEvent,
    ConfigStore,
    Mode,
    ModeKind,
    Rest,
    Word,
    cmd,
    config_attempts,
    render_running_config,
    run_line,
    tokenize,
)
from tunnelswarm.errors import LocalProtocolError

__all__ = ["AdminConsole", "ShowHandler", "ShowRegistry", "show_version_line"]

#: ``handler(config, extra_words) -> output lines``
ShowHandler = Callable[[AsaConfig, tuple[str, ...]], list[str]]

PASSWORD_PROMPT: Final = "Password:"
MAX_PASSWORD_TRIES: Final = 3
_BUILTIN_SHOWS: Final = ("version", "running-config")


def show_version_line(cfg: AsaConfig) -> str:
    return f"Cisco Adaptive Security Appliance Software Version {cfg.asa_version}"


class ShowRegistry:
    """``show <prefix> …`` handlers added by other modules (sessiondb, asp, syslog …)."""

    def __init__(self) -> None:
        self._handlers: dict[tuple[str, ...], ShowHandler] = {}
        self._commands: list[Command] = []

    def register(self, prefix: str, handler: ShowHandler) -> None:
        words = tuple(prefix.lower().split())
        if not words or words[0] in _BUILTIN_SHOWS:
            raise LocalProtocolError(f"cannot register 'show {prefix}'")
        self._handlers[words] = handler

    def register_command(self, command: Command) -> None:
        """A privileged command (exec and configuration modes), e.g. ``cmd(handler,
        "clear aaa local user lockout", "all")``; tried after the ``show`` hooks."""
        self._commands.append(command)

    def commands(self) -> list[Command]:
        shows = [
            cmd(_show_hook(handler), "show", " ".join(words), Rest())
            for words, handler in self._handlers.items()
        ]
        return shows + self._commands


def _show_hook(handler: ShowHandler) -> Callable[[CommandContext, Args], None]:
    def h(ctx: CommandContext, a: Args) -> None:
        ctx.out += handler(ctx.cfg, a.words(0))

    return h


# ----------------------------------------------------------------- built-in commands
def _action(name: str, mode: ModeKind | None = None) -> Callable[[CommandContext, Args], None]:
    def h(ctx: CommandContext, a: Args) -> None:
        ctx.action = name
        if mode is not None:
            ctx.mode = Mode(mode)

    return h


def _show_version(ctx: CommandContext, a: Args) -> None:
    ctx.out.append(show_version_line(ctx.cfg))


def _show_run(section: str | None) -> Callable[[CommandContext, Args], None]:
    def h(ctx: CommandContext, a: Args) -> None:
        name = a.text(0) if a.values else None
        ctx.out += render_running_config(ctx.cfg, section, name)

    return h


def _write(ctx: CommandContext, a: Args) -> None:
    ctx.action = "write"
    ctx.out += ["Building configuration...", "[OK]"]


_SHOW_RUN_SECTIONS: Final = (
    "webvpn",
    "interface",
    "username",
    "logging",
    "sysopt",
    "ssl",
    "ip local pool",
    "aaa",
)

BUILTIN_SHOW_COMMANDS: Final = (
    cmd(_show_version, "show version"),
    cmd(_show_run(None), "show running-config"),
    *(cmd(_show_run(s), "show running-config", s) for s in _SHOW_RUN_SECTIONS),
    cmd(_show_run("group-policy"), "show running-config group-policy"),
    cmd(_show_run("group-policy"), "show running-config group-policy", Word()),
    cmd(_show_run("tunnel-group"), "show running-config tunnel-group"),
    cmd(_show_run("tunnel-group"), "show running-config tunnel-group", Word()),
)

WRITE_COMMANDS: Final = (cmd(_write, "write"), cmd(_write, "write memory"))

USER_COMMANDS: Final = (
    cmd(_action("enable"), "enable"),
    cmd(_action("logout"), "exit"),
    cmd(_action("logout"), "quit"),
    cmd(_show_version, "show version"),
)

EXEC_COMMANDS: Final = (
    cmd(_action("configure", ModeKind.CONFIG), "configure terminal"),
    cmd(_action("disable", ModeKind.USER), "disable"),
    cmd(_action("noop"), "enable"),
    cmd(_action("logout"), "exit"),
    cmd(_action("logout"), "quit"),
    *WRITE_COMMANDS,
)


class AdminConsole:
    """One admin CLI session. ``feed(line) -> output lines``; ``prompt`` is the next prompt.

    ``config`` may be an :class:`AsaConfig` (the console then owns a private
    :class:`ConfigStore`) or a store shared with other consoles and the server.
    """

    def __init__(
        self,
        config: AsaConfig | ConfigStore | None = None,
        *,
        privileged: bool = False,
        shows: ShowRegistry | None = None,
    ) -> None:
        self._store = config if isinstance(config, ConfigStore) else ConfigStore(config)
        self._mode = Mode(ModeKind.EXEC if privileged else ModeKind.USER)
        self._shows = shows if shows is not None else ShowRegistry()
        self._awaiting_password = False
        self._password_failures = 0
        self.closed = False
        #: the configuration as of the last ``write memory`` (``None``: never written)
        self.saved_config: AsaConfig | None = None

    # ----------------------------------------------------------------- state
    @property
    def store(self) -> ConfigStore:
        return self._store

    @property
    def config(self) -> AsaConfig:
        return self._store.config

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def prompt(self) -> str:
        """The prompt to print before the next line (without the trailing space)."""
        if self._awaiting_password:
            return PASSWORD_PROMPT
        return self._mode.prompt(self.config.hostname)

    def drain_events(self) -> list[ConfigEvent]:
        """The change events committed since the last call (all consoles of the store)."""
        return self._store.drain_events()

    def register_show(self, prefix: str, handler: ShowHandler) -> None:
        self._shows.register(prefix, handler)

    # ----------------------------------------------------------------- input
    def feed(self, line: str) -> list[str]:
        """Process one input line (without its line ending); return the output lines."""
        if self.closed:
            raise LocalProtocolError("admin console is closed")
        line = line.rstrip("\r\n")
        if self._awaiting_password:
            return self._check_password(line)
        tokens = tokenize(line)
        if not tokens or tokens[0].text.startswith(("!", ":")):
            return []
        prompt = self.prompt
        try:
            ctx = run_line(tokens, self._attempts(), self.config)
        except CliError as e:
            if e.column is None:
                return list(e.lines)
            return [" " * (len(prompt) + 1 + e.column) + "^", *e.lines]
        if ctx.cfg is not self.config:
            self._store.commit(ctx.cfg)
        self._mode = ctx.mode
        self._act(ctx.action)
        return ctx.out

    def _attempts(self) -> Sequence[tuple[Mode, Sequence[Command]]]:
        kind = self._mode.kind
        if kind is ModeKind.USER:
            return [(self._mode, USER_COMMANDS)]
        shows = (*BUILTIN_SHOW_COMMANDS, *self._shows.commands())
        if kind is ModeKind.EXEC:
            return [(self._mode, (*EXEC_COMMANDS, *shows))]
        return config_attempts(self._mode, (*shows, *WRITE_COMMANDS))

    def _act(self, action: str | None) -> None:
        if action == "enable":
            self._awaiting_password = True
        elif action == "logout":
            self.closed = True
        elif action == "write":
            self.saved_config = self.config

    def _check_password(self, line: str) -> list[str]:
        expected = self.config.enable_password or ""
        if line == expected:
            self._awaiting_password = False
            self._password_failures = 0
            self._mode = Mode(ModeKind.EXEC)
            return []
        self._password_failures += 1
        if self._password_failures < MAX_PASSWORD_TRIES:
            return ["Invalid password"]  # text UNCONFIRMED
        self._awaiting_password = False
        self._password_failures = 0
        return ["Access denied."]  # text UNCONFIRMED
