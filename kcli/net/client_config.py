"""kcli's client security settings, by the names Kafka's clients use (``security.protocol``,
``sasl.mechanism``, ``sasl.username``, ``ssl.cafile``, ...).

Where they come from (``--command-config FILE``, ``kcli.toml``) is the CLI's business: it calls
:func:`set_client_config` once per process, and every TCP connection kcli opens reads them with
:func:`client_config`.  Connections over the Unix socket use none of them (the kernel vouches for
whoever connects there)."""

from __future__ import annotations

from collections.abc import Mapping

_settings: dict[str, str] = {}


def set_client_config(settings: Mapping[str, object]) -> None:
    """Make ``settings`` (Kafka client property names -> values) this process's client settings."""
    _settings.clear()
    _settings.update({str(k).strip(): str(v).strip() for k, v in settings.items()})


def client_config() -> Mapping[str, str]:
    """This process's client settings (empty: PLAINTEXT, no authentication)."""
    return dict(_settings)
