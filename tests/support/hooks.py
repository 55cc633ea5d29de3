"""Temporal hooks the connection tests plug in through ``DLQ_TEMPORAL_HOOKS``.

:data:`hooks` (named ``tests.support.hooks:hooks``) gives every client and
worker the DLQ builds:

* a payload codec (:class:`MarkingCodec`) on the data converter: every payload
  the DLQ writes to Temporal is reversed and marked ``binary/dlq-test``, so a
  plain client reading the history sees it was applied, and a worker without
  the codec could not read the entry;
* an interceptor that is both a client and a worker interceptor and appends
  ``<pid> client <call>`` / ``<pid> activity <name>`` to the file named by
  ``HOOKS_CALL_LOG``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

from temporalio import activity, client, worker
from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter, PayloadCodec

from dlq import TemporalHooks
from tests.support.call_log import append_call

MARK = b"binary/dlq-test"


class MarkingCodec(PayloadCodec):
    """Reverses the payload bytes and marks the encoding (a stand-in for encryption)."""

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Wrap each payload."""
        return [Payload(metadata={"encoding": MARK}, data=p.SerializeToString()[::-1])
                for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Unwrap each payload (others pass through)."""
        out = []
        for p in payloads:
            if p.metadata.get("encoding") == MARK:
                inner = Payload()
                inner.ParseFromString(p.data[::-1])
                out.append(inner)
            else:
                out.append(p)
        return out


def _log(line: str) -> None:
    append_call("HOOKS_CALL_LOG", f"{os.getpid()} {line}")


class _ClientCalls(client.OutboundInterceptor):
    async def start_workflow(self, input: Any) -> Any:
        _log(f"client start_workflow {input.workflow}")
        return await super().start_workflow(input)

    async def start_workflow_update(self, input: Any) -> Any:
        _log(f"client update {input.update}")
        return await super().start_workflow_update(input)

    async def start_update_with_start_workflow(self, input: Any) -> Any:
        _log("client update_with_start")
        return await super().start_update_with_start_workflow(input)


class _ActivityCalls(worker.ActivityInboundInterceptor):
    async def execute_activity(self, input: Any) -> Any:
        _log(f"activity {activity.info().activity_type}")
        return await super().execute_activity(input)


class CallLog(client.Interceptor, worker.Interceptor):
    """Logs client calls and activity executions (one object serves both sides)."""

    def intercept_client(self, next: client.OutboundInterceptor) -> client.OutboundInterceptor:
        """Wrap the client's outbound calls."""
        return _ClientCalls(next)

    def intercept_activity(self, next: worker.ActivityInboundInterceptor
                           ) -> worker.ActivityInboundInterceptor:
        """Wrap activity executions."""
        return _ActivityCalls(next)


def _with_codec(converter: DataConverter) -> DataConverter:
    return dataclasses.replace(converter, payload_codec=MarkingCodec())


hooks = TemporalHooks(data_converter=_with_codec, interceptors=[CallLog()])
