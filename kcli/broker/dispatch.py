"""Request bytes in, response bytes out.

The handler table below is the single list of what this broker implements; ApiVersions advertises
exactly it (intersected with what the codec can encode), so clients never pick an API we would refuse.
A request whose header reads but which cannot be served -- a version we do not speak, a body that does
not decode -- gets Kafka's error answer (:func:`kcli.protocol.error_response`: UNSUPPORTED_VERSION or
INVALID_REQUEST, per topic and partition where the request names them) and the connection goes on.
What cannot be answered at all raises :class:`CloseConnection`, as Kafka closes: a header that does
not read and a Produce whose acks cannot be known (an acks=0 producer learns of errors only from a
closed connection).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from kcli.broker import (
    acl_handlers,
    admin_handlers,
    cluster_handlers,
    config_handlers,
    consumer_group_handlers,
    group_handlers,
    handlers,
    leadership_handlers,
    records_handlers,
    sasl_handlers,
    scram_handlers,
    txn_handlers,
)
from kcli.broker.authorize import Unauthorized
from kcli.broker.context import BrokerContext
from kcli.broker.session import current
from kcli.errors import ProtocolError
from kcli.protocol import (
    SUPPORTED,
    ApiKey,
    ErrorCode,
    RequestError,
    RequestHeader,
    Struct,
    api_name,
    decode_request,
    encode_response,
    error_name,
    error_response,
)

log = logging.getLogger("kcli.broker")

# (context, request header, decoded body) -> the response body, or None when none is due (acks=0)
Handler = Callable[[BrokerContext, RequestHeader, Struct], handlers.Body | None]

HANDLERS: dict[int, Handler] = {
    ApiKey.API_VERSIONS: handlers.api_versions,
    ApiKey.METADATA: handlers.metadata,
    ApiKey.DESCRIBE_TOPIC_PARTITIONS: handlers.describe_topic_partitions,
    ApiKey.INIT_PRODUCER_ID: txn_handlers.init_producer_id,
    ApiKey.PRODUCE: handlers.produce,
    ApiKey.FETCH: handlers.fetch,
    ApiKey.LIST_OFFSETS: handlers.list_offsets,
    ApiKey.OFFSET_FOR_LEADER_EPOCH: handlers.offset_for_leader_epoch,
    ApiKey.CREATE_TOPICS: admin_handlers.create_topics,
    ApiKey.DELETE_TOPICS: admin_handlers.delete_topics,
    ApiKey.CREATE_PARTITIONS: admin_handlers.create_partitions,
    ApiKey.FIND_COORDINATOR: group_handlers.find_coordinator,
    ApiKey.JOIN_GROUP: group_handlers.join_group,
    ApiKey.SYNC_GROUP: group_handlers.sync_group,
    ApiKey.HEARTBEAT: group_handlers.heartbeat,
    ApiKey.LEAVE_GROUP: group_handlers.leave_group,
    ApiKey.OFFSET_COMMIT: group_handlers.offset_commit,
    ApiKey.OFFSET_FETCH: group_handlers.offset_fetch,
    ApiKey.LIST_GROUPS: group_handlers.list_groups,
    ApiKey.DESCRIBE_GROUPS: group_handlers.describe_groups,
    ApiKey.DELETE_GROUPS: group_handlers.delete_groups,
    ApiKey.OFFSET_DELETE: group_handlers.offset_delete,
    ApiKey.ADD_PARTITIONS_TO_TXN: txn_handlers.add_partitions_to_txn,
    ApiKey.ADD_OFFSETS_TO_TXN: txn_handlers.add_offsets_to_txn,
    ApiKey.END_TXN: txn_handlers.end_txn,
    ApiKey.TXN_OFFSET_COMMIT: txn_handlers.txn_offset_commit,
    ApiKey.WRITE_TXN_MARKERS: txn_handlers.write_txn_markers,
    ApiKey.DESCRIBE_PRODUCERS: txn_handlers.describe_producers,
    ApiKey.DESCRIBE_TRANSACTIONS: txn_handlers.describe_transactions,
    ApiKey.LIST_TRANSACTIONS: txn_handlers.list_transactions,
    ApiKey.DESCRIBE_CLUSTER: cluster_handlers.describe_cluster,
    ApiKey.DESCRIBE_LOG_DIRS: cluster_handlers.describe_log_dirs,
    ApiKey.DESCRIBE_CONFIGS: config_handlers.describe_configs,
    ApiKey.ALTER_CONFIGS: config_handlers.alter_configs,
    ApiKey.INCREMENTAL_ALTER_CONFIGS: config_handlers.incremental_alter_configs,
    ApiKey.DELETE_RECORDS: records_handlers.delete_records,
    ApiKey.ELECT_LEADERS: leadership_handlers.elect_leaders,
    ApiKey.ALTER_PARTITION_REASSIGNMENTS: leadership_handlers.alter_partition_reassignments,
    ApiKey.LIST_PARTITION_REASSIGNMENTS: leadership_handlers.list_partition_reassignments,
    ApiKey.CONSUMER_GROUP_HEARTBEAT: consumer_group_handlers.consumer_group_heartbeat,
    ApiKey.CONSUMER_GROUP_DESCRIBE: consumer_group_handlers.consumer_group_describe,
    ApiKey.SASL_HANDSHAKE: sasl_handlers.sasl_handshake,
    ApiKey.SASL_AUTHENTICATE: sasl_handlers.sasl_authenticate,
    ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS: scram_handlers.describe_user_scram_credentials,
    ApiKey.ALTER_USER_SCRAM_CREDENTIALS: scram_handlers.alter_user_scram_credentials,
    ApiKey.DESCRIBE_ACLS: acl_handlers.describe_acls,
    ApiKey.CREATE_ACLS: acl_handlers.create_acls,
    ApiKey.DELETE_ACLS: acl_handlers.delete_acls,
}


def advertised() -> dict[int, tuple[int, int]]:
    """``{api_key: (min, max)}`` for every API with a handler that the codec supports."""
    return {key: SUPPORTED[key] for key in HANDLERS if key in SUPPORTED}


class CloseConnection(Exception):
    """Stop talking to this client (the reason is logged), after sending it ``answer`` if there is one
    (a failed SASL authentication is told why before the connection closes, as Kafka does)."""

    def __init__(self, reason: str, answer: bytes | None = None, linger: float = 0.0) -> None:
        super().__init__(reason)
        self.answer = answer
        self.linger = linger  # seconds to wait, after the answer, for the client to hang up first


class Dispatcher:
    def __init__(self, ctx: BrokerContext) -> None:
        self.ctx = ctx
        ctx.advertised = advertised()

    def handle(self, payload: bytes) -> bytes | None:
        """The framed response to one request payload; None when no response is due (acks=0).

        On a SASL listener, before authentication only ApiVersions and SASL's own requests are served
        (anything else closes the connection), and after SaslHandshake v0 a frame is a bare SASL token
        (:mod:`kcli.broker.sasl_handlers`)."""
        session = current()
        try:
            if session.sasl.raw_tokens and session.sasl.exchange is not None:
                return sasl_handlers.raw_token(self.ctx, session, payload)
            try:
                request = decode_request(payload)
            except RequestError as exc:
                sasl_handlers.gate(session, exc.header.api_key)
                return self.refuse(exc.header, exc.error_code, exc.body, str(exc))
            except ProtocolError as exc:
                raise CloseConnection(f"malformed request: {exc}") from None
            header = request.header
            sasl_handlers.gate(session, header.api_key)
            if log.isEnabledFor(logging.DEBUG):  # --verbose: which versions clients use
                log.debug("request %s v%d from client %r", api_name(header.api_key), header.api_version, header.client_id)
            handler = HANDLERS.get(header.api_key)
            if handler is None:  # a codec without a handler: not advertised, so as good as unknown
                return self.refuse(header, ErrorCode.UNSUPPORTED_VERSION, request.body, "not implemented by this broker")
            try:
                body = handler(self.ctx, header, request.body)
            except Unauthorized as exc:  # the whole request is refused: Kafka's error answer, every entry
                return self.refuse(header, exc.code, request.body, str(exc))
            except sasl_handlers.AnswerThenClose as exc:
                answer = encode_response(header.api_key, header.api_version, header.correlation_id, exc.body)
                raise CloseConnection(str(exc), answer, sasl_handlers.failure_linger(self.ctx)) from None
        except sasl_handlers.CloseNow as exc:
            raise CloseConnection(str(exc)) from None
        if body is None:
            return None
        return encode_response(header.api_key, header.api_version, header.correlation_id, body)

    @staticmethod
    def refuse(header: RequestHeader, code: int, body: Struct | None, why: str) -> bytes:
        """Kafka's error answer to a request that cannot be served, or CloseConnection if none can be
        given (the reason is logged either way)."""
        name = f"{api_name(header.api_key)} v{header.api_version}"
        if header.api_key == ApiKey.PRODUCE and (body is None or body.acks == 0):
            raise CloseConnection(f"{name}: {why}")
        answer = error_response(header, code, body)
        if answer is None:
            raise CloseConnection(f"{name}: {why}")
        log.info("answering %s from client %r with %s: %s", name, header.client_id, error_name(code), why)
        return answer
