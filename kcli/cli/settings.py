"""The config file: defaults for command-line options, read from TOML.

Where it is (the first that applies):

1. ``--config FILE`` or ``$KCLI_CONFIG`` (the file must exist);
2. ``kcli.toml`` in the data directory (``--data-dir``, ``$KCLI_DATA_DIR`` or the default), if present.

What it holds: top-level keys are the global options (``lock_timeout``; ``data_dir`` only in a file given
with ``--config``/``$KCLI_CONFIG``), and one table per command, nested for subcommands of a group::

    lock_timeout = 5

    [produce]
    compression = "lz4"
    linger_ms = 10

    [consume]
    format = "%k=%s\\n"

    [topic.create]
    partitions = 3

    [broker]                      # static broker configs by Kafka's names (server.properties)
    num.partitions = 4
    log.retention.hours = 24

    [client]                      # kcli's client properties by Kafka's names (--bootstrap-server)
    security.protocol = "SSL"
    ssl.cafile = "/etc/kafka/ca.pem"

A key is an option's long name with ``_`` or ``-`` between words (``linger_ms`` or ``linger-ms``) or the
name of its parameter.  Precedence: a flag on the command line, then an environment variable, then the
file, then the built-in default.  The values reach click through ``Context.default_map``; they are
validated when the file is read, so an unknown table or key, or a bad value, is a usage error (exit 2)
naming the file, before any work starts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import click
from click.core import ParameterSource

from kcli.errors import UsageError

CONFIG_NAME = "kcli.toml"
CONFIG_ENVVAR = "KCLI_CONFIG"

# options the file cannot set (a config file cannot name another config file)
_NOT_SETTABLE = frozenset({"config_file"})


def locate(data_dir: str | None, explicit: str | None) -> tuple[str | None, bool]:
    """The config file to read and whether it was asked for explicitly (then it must exist)."""
    if explicit:
        return os.path.expanduser(explicit), True
    from kcli.cluster.datadir import default_data_dir

    path = os.path.join(data_dir or default_data_dir(), CONFIG_NAME)
    return (path, False) if os.path.isfile(path) else (None, False)


def read(path: str) -> dict[str, Any]:
    """Parse ``path`` as TOML; any problem is a one-line usage error."""
    import tomllib

    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise UsageError(
            f"config file {path} does not exist", hint=f"check --config / ${CONFIG_ENVVAR}"
        ) from None
    except OSError as exc:
        raise UsageError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"config file {path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"config file {path} is not valid UTF-8") from None


def _key(name: str) -> str:
    return name.lstrip("-").replace("-", "_")


def _is_switch(param: click.Option) -> bool:
    """One of several flags that set the same parameter to different values (``flag_value``)."""
    return param.is_flag and not param.is_bool_flag


def preferred_key(param: click.Option) -> str:
    """How the file spells ``param``: its first long option name with underscores (``linger_ms``)."""
    for opt in param.opts:
        if opt.startswith("--"):
            return _key(opt)
    return _key(param.name or "")


def settable_options(command: click.Command, ctx: click.Context) -> dict[str, click.Option]:
    """Key spellings accepted in the file for ``command`` -> the option they set.

    Long option names win over parameter names (``format`` rather than ``fmt``; both work)."""
    params = [
        p
        for p in command.get_params(ctx)
        if isinstance(p, click.Option)
        and not p.is_eager
        and not p.hidden
        and p.name is not None
        and p.name not in _NOT_SETTABLE
    ]
    out: dict[str, click.Option] = {}
    for param in params:
        if not _is_switch(param):
            out[_key(param.name or "")] = param
    for param in params:
        for opt in param.opts:
            if opt.startswith("--"):
                out[_key(opt)] = param
    return out


def _where(path: str, section: tuple[str, ...]) -> str:
    return f"[{'.'.join(section)}] in {path}" if section else f"top level of {path}"


def _convert(
    command: click.Command, ctx: click.Context, table: Mapping[str, Any], path: str, section: tuple[str, ...]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validate one table of the file against ``command``.

    Returns (option defaults keyed by parameter name with values as written, nested tables for
    subcommands)."""
    options = settable_options(command, ctx)
    values: dict[str, Any] = {}
    subtables: dict[str, Any] = {}
    seen: dict[str, str] = {}
    for raw_key, value in table.items():
        if isinstance(value, dict):
            if not isinstance(command, click.Group):
                raise UsageError(
                    f"unknown table [{'.'.join((*section, raw_key))}] in {path}",
                    hint=f"`kcli {' '.join(section)}` has no subcommands",
                )
            subtables[raw_key] = value
            continue
        param = options.get(_key(raw_key))
        if param is None:
            known = ", ".join(sorted({preferred_key(p) for p in options.values()})) or "none"
            raise UsageError(
                f"unknown key {raw_key!r} at {_where(path, section)}", hint=f"known keys: {known}"
            )
        name = param.name or raw_key
        if _is_switch(param):
            # `under_replicated_partitions = true` selects that flag's value
            if not isinstance(value, bool):
                raise UsageError(
                    f"bad value for {raw_key!r} at {_where(path, section)}: must be true or false"
                )
            if not value:
                continue
            value = param.flag_value
        elif param.multiple and not isinstance(value, list):
            value = [value]
        if name in seen:
            raise UsageError(f"{seen[name]!r} and {raw_key!r} set the same option at {_where(path, section)}")
        seen[name] = raw_key
        try:
            param.type_cast_value(ctx, value)
        except click.BadParameter as exc:
            raise UsageError(f"bad value for {raw_key!r} at {_where(path, section)}: {exc.message}") from None
        values[name] = value
    return values, subtables


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """TOML's nested tables back to dotted names: ``log.retention.ms = 5`` is {"log": {"retention": ...}}."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _take_broker_configs(
    group: click.Group, ctx: click.Context, table: Mapping[str, Any], path: str
) -> dict[str, Any]:
    """The ``[broker]`` table holds static broker configs by Kafka name (server.properties); its tables
    named like a ``kcli broker`` subcommand ([broker.serve]) stay option defaults.  The configs become
    this process's static broker configs; returns the rest of the table."""
    from kcli.cluster.configs import parse_broker_configs, set_static
    from kcli.errors import InvalidConfigError

    commands = set(group.list_commands(ctx))
    rest = {k: v for k, v in table.items() if k in commands and isinstance(v, dict)}
    configs = _flatten({k: v for k, v in table.items() if k not in rest})
    try:
        set_static(parse_broker_configs(configs))
    except InvalidConfigError as exc:
        raise UsageError(f"bad broker config at [broker] in {path}: {exc.message}", hint=exc.hint) from None
    return rest


def _default_map(
    group: click.Group, ctx: click.Context, tables: Mapping[str, Any], path: str, section: tuple[str, ...]
) -> dict[str, Any]:
    """A click ``default_map`` for the subcommands of ``group`` from the file's tables."""
    out: dict[str, Any] = {}
    for name, table in tables.items():
        where = (*section, name)
        try:
            command = group.get_command(ctx, name)
        except ImportError:
            # the command itself is broken and will say so when run; pass its table through unchecked
            out[name] = dict(table)
            continue
        if command is None:
            known = ", ".join(group.list_commands(ctx))
            raise UsageError(
                f"unknown table [{'.'.join(where)}] in {path}: there is no command `kcli {' '.join(where)}`",
                hint=f"commands: {known}",
            )
        sub_ctx = click.Context(command, info_name=name, parent=ctx)
        if where == ("broker",) and isinstance(command, click.Group):
            table = _take_broker_configs(command, sub_ctx, table, path)
        values, subtables = _convert(command, sub_ctx, table, path, where)
        if subtables:
            assert isinstance(command, click.Group)
            values.update(_default_map(command, sub_ctx, subtables, path, where))
        out[name] = values
    return out


def _set_client_config(table: Mapping[str, Any] | None, command_config: str | None, path: str | None) -> None:
    """This run's client properties: kcli.toml's [client] table, then --command-config's file (set even
    when empty: a run before in this process, in tests, may have set others)."""
    from kcli.net import client_config

    if table is not None and not isinstance(table, dict):
        raise UsageError(f"[client] in {path} must be a table of client properties")
    properties = _flatten(table or {})
    client_config.set_default(lambda: client_config.load(properties, command_config))


def _forget_static_broker_configs() -> None:
    """A command run in this process before (tests run many) may have set them from another file."""
    import sys

    configs = sys.modules.get("kcli.cluster.configs")  # not imported: none are set, and none is needed
    if configs is not None:
        configs.set_static({})


def apply_config_file(ctx: click.Context, params: dict[str, Any], config_file: str | None) -> dict[str, Any]:
    """Read the config file for the top-level group's callback.

    ``params`` are the global options as parsed; returns them with the file's values filled in where
    neither the command line nor the environment gave one, and sets ``ctx.default_map`` for the
    subcommands."""
    _forget_static_broker_configs()
    path, explicit = locate(params.get("data_dir"), config_file)
    if path is None:
        _set_client_config(None, params.get("command_config"), None)
        return params
    doc = read(path)
    client_table = doc.pop("client", None)
    group = ctx.command
    assert isinstance(group, click.Group)
    top, tables = _convert(group, ctx, doc, path, ())
    if "data_dir" in top and not explicit:
        raise UsageError(
            f"data_dir cannot be set in {path}, the data dir's own config file",
            hint=f"use --config FILE or ${CONFIG_ENVVAR} for a file that chooses the data dir",
        )
    out = dict(params)
    for name, value in top.items():
        if ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP, None):
            continue  # the command line or the environment wins
        param = next(p for p in group.params if p.name == name)
        value = param.type_cast_value(ctx, value)
        if name == "data_dir" and isinstance(value, str):
            value = os.path.join(os.path.dirname(os.path.abspath(path)), os.path.expanduser(value))
        out[name] = value
    ctx.default_map = _default_map(group, ctx, tables, path, ())
    _set_client_config(client_table, out.get("command_config"), path)
    return out
