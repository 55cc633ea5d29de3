"""Alert rules (``DLQ_ALERT_RULES``): what to watch and which webhooks to tell.

A JSON list of rules, each one of five kinds:

* ``new_group``: a failure group first seen within the last ``window_minutes``;
* ``group_rate``: a group with more than ``threshold`` occurrences per minute,
  averaged over the last ``window_minutes``;
* ``sla_breach``: at least ``threshold`` open entries of a domain older than
  its SLA (``DLQ_SLA_THRESHOLDS``);
* ``review_backlog``: more than ``threshold`` entries in ``requires_review``;
* ``outbox``: the worker's outbox holds more than ``threshold`` quarantined
  (repeatedly failing) records, or its oldest record is older than
  ``max_age_seconds``.

One alert per (rule, subject) per ``cooldown_seconds``; the subject is the
group, the domain or the outbox. Parsing only, no I/O.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

__all__ = ["AlertRule", "RULE_KINDS", "AlertWebhook", "parse_alert_rules"]

RULE_KINDS = ("new_group", "group_rate", "sla_breach", "review_backlog", "outbox")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


class AlertWebhook(BaseModel):
    """Where a rule's alerts are posted.

    Attributes:
        url: ``http(s)://`` URL (a Slack incoming-webhook URL is a secret: it
            stays in the worker's configuration, never in Temporal).
        format: ``json`` (the alert as a JSON object) or ``slack`` (a
            Slack-compatible ``{"text": ..., "blocks": [...]}`` message).
        headers: Extra request headers (e.g. an ``Authorization``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    format: Literal["json", "slack"] = "json"
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http:// or https:// URL")
        return value


class AlertRule(BaseModel):
    """One alert rule (see the module docstring for the kinds).

    Attributes:
        name: Unique name (letters, digits, ``_.-``); alerts record it.
        kind: One of :data:`RULE_KINDS`.
        threshold: Per kind: rate per minute (``group_rate``), entry count
            (``sla_breach``, default 1; ``review_backlog``), quarantined
            records (``outbox``, default 0).
        window_minutes: How far back ``new_group`` and ``group_rate`` look.
        max_age_seconds: ``outbox``: alert when the oldest record is older.
        domain: Only this domain (all when None; not for ``outbox``).
        cooldown_seconds: At most one alert per (rule, subject) in this time.
        webhooks: Where to post (at least one).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: Literal["new_group", "group_rate", "sla_breach", "review_backlog", "outbox"]
    threshold: float | None = Field(default=None, ge=0)
    window_minutes: int = Field(default=15, ge=1, le=1440)
    max_age_seconds: float | None = Field(default=None, gt=0)
    domain: str | None = None
    cooldown_seconds: float = Field(default=3600.0, ge=0)
    webhooks: tuple[AlertWebhook, ...] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be 1-100 letters, digits, '_', '.' or '-'")
        return value

    @model_validator(mode="after")
    def _kind_fields(self) -> AlertRule:
        if self.kind in ("group_rate", "review_backlog") and self.threshold is None:
            raise ValueError(f"kind {self.kind!r} needs 'threshold'")
        if self.kind == "outbox" and self.domain is not None:
            raise ValueError("kind 'outbox' takes no 'domain'")
        return self

    @property
    def limit(self) -> float:
        """The threshold with its per-kind default."""
        if self.threshold is not None:
            return self.threshold
        return 1.0 if self.kind == "sla_breach" else 0.0


def parse_alert_rules(raw: Any) -> tuple[AlertRule, ...]:
    """Parse ``DLQ_ALERT_RULES``: a JSON list (text or already decoded) of rule objects.

    Raises:
        ValueError: Naming the rule (index and name) and the field that is wrong,
            or a duplicate rule name.
    """
    if raw is None or raw == "" or raw == ():
        return ()
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as err:
            raise ValueError(f"alert rules must be a JSON list: {err}") from None
    if isinstance(raw, AlertRule):
        raw = [raw]
    if not isinstance(raw, list | tuple):
        raise ValueError(f"alert rules must be a JSON list of objects, got "
                         f"{type(raw).__name__}")
    rules: list[AlertRule] = []
    for index, item in enumerate(raw):
        if isinstance(item, AlertRule):
            rules.append(item)
            continue
        label = f"alert rule {index}"
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            label += f" ({item['name']!r})"
        try:
            rules.append(AlertRule.model_validate(item))
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "rule"
            raise ValueError(f"{label}: {where}: "
                             f"{first['msg'].removeprefix('Value error, ')}") from None
    names = [r.name for r in rules]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"alert rule names must be unique: {', '.join(duplicates)}")
    return tuple(rules)
