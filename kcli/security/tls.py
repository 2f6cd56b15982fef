"""TLS contexts for both ends, from PEM files, with Python's :mod:`ssl`.

A broker's context serves a certificate and, with ``ssl.client.auth`` ``required`` or ``requested``,
asks clients for theirs and checks it against a CA file.  A client's context checks the broker's
certificate against a CA file (the system's when none is given) and, unless told otherwise (Kafka's
``ssl.endpoint.identification.algorithm`` set empty), that it names the host connected to.

A key's passphrase is given to OpenSSL and never appears in an error message.
"""

from __future__ import annotations

import ssl

from kcli.errors import UsageError

CLIENT_AUTH = {"required": ssl.CERT_REQUIRED, "requested": ssl.CERT_OPTIONAL, "none": ssl.CERT_NONE}


def _load_chain(context: ssl.SSLContext, certfile: str, keyfile: str | None, password: str | None) -> None:
    try:
        context.load_cert_chain(certfile, keyfile or None, password=password or None)
    except FileNotFoundError as exc:
        raise UsageError(f"cannot read TLS certificate or key: {exc.filename or certfile}: no such file") from None
    except (ssl.SSLError, OSError, ValueError) as exc:
        # the SSLError names the OpenSSL reason ("bad decrypt", "PEM lib"), never the passphrase
        reason = getattr(exc, "reason", None) or type(exc).__name__
        raise UsageError(f"cannot load the TLS certificate {certfile}"
                         + (f" with the key {keyfile}" if keyfile else "") + f": {reason}",
                         hint="give PEM files; an encrypted key needs its passphrase (ssl.key.password)") from None


def _load_ca(context: ssl.SSLContext, cafile: str) -> None:
    try:
        context.load_verify_locations(cafile=cafile)
    except FileNotFoundError:
        raise UsageError(f"cannot read the TLS CA file {cafile}: no such file") from None
    except (ssl.SSLError, OSError) as exc:
        raise UsageError(f"cannot load the TLS CA file {cafile}: {getattr(exc, 'reason', None) or exc}",
                         hint="give the CA certificates as PEM") from None


def server_context(certfile: str, keyfile: str | None = None, password: str | None = None,
                   cafile: str | None = None, client_auth: str = "none") -> ssl.SSLContext:
    """A broker listener's context.  ``client_auth``: required (a client without a certificate signed
    by ``cafile`` is refused), requested (one is checked if sent) or none."""
    mode = CLIENT_AUTH.get(client_auth.strip().lower())
    if mode is None:
        raise UsageError(f"bad ssl.client.auth {client_auth!r}", hint="use required, requested or none")
    if mode != ssl.CERT_NONE and not cafile:
        raise UsageError(f"ssl.client.auth={client_auth} needs a CA file to check client certificates with",
                         hint="give --ssl-cafile (ssl.truststore.location)")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_chain(context, certfile, keyfile, password)
    if cafile:
        _load_ca(context, cafile)
    context.verify_mode = mode
    return context


def client_context(cafile: str | None = None, certfile: str | None = None, keyfile: str | None = None,
                   password: str | None = None, check_hostname: bool = True) -> ssl.SSLContext:
    """A client's context: the broker's certificate checked against ``cafile`` (the system's CAs when
    None), its host name too unless ``check_hostname`` is off; ``certfile``/``keyfile`` for brokers
    that ask for a client certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = check_hostname
    if cafile:
        _load_ca(context, cafile)
    else:
        context.load_default_certs()
    if certfile:
        _load_chain(context, certfile, keyfile, password)
    elif keyfile:
        raise UsageError("ssl.keyfile is given without ssl.certfile", hint="give the client certificate too")
    return context
