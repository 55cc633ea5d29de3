"""Evaluating the alert rules: what each rule sees now, and the alerts that raises.

:func:`raise_alerts` runs in the ``evaluate_alerts`` activity: it evaluates
every rule against SQL (and the worker's outbox), skips a (rule, subject)
that raised an alert within its cooldown, and records the new alerts as
``pending`` in ``dlq_alerts``, so each is delivered (and counted) once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from sqlalchemy.engine import Engine
from sqlmodel import Session

from dlq._alert_rules import AlertRule
from dlq._config import DLQConfig
from dlq._outbox import OutboxStats
from dlq._sql import alerts as sql_alerts
from dlq._sql import groups as sql_groups

__all__ = ["Candidate", "evaluate_rule", "raise_alerts"]

Candidate = dict[str, Any]
MAX_SUBJECTS = 50  # per rule and evaluation: a storm of new groups is 50 alerts, not 5,000


def raise_alerts(engine: Engine, config: DLQConfig, now: datetime,
                 outbox: OutboxStats | None) -> list[tuple[str, str]]:
    """Evaluate every rule, record the alerts it raises, and return those to deliver.

    Returns:
        (alert id, rule name) of every pending alert: raised now, or left
        pending by an earlier run that stopped before delivering it.
    """
    with Session(engine) as session:
        sql_groups.prune_group_minutes(session=session, now=now)
        for rule in config.alert_rules:
            for candidate in evaluate_rule(session, rule, config, now, outbox):
                last = sql_alerts.last_alert_at(session=session, rule=rule.name,
                                                subject=candidate["subject"])
                if last is not None and now - last < timedelta(seconds=rule.cooldown_seconds):
                    continue
                since = candidate["since"]
                sql_alerts.insert_alert(session=session, alert={
                    **candidate, "id": uuid.uuid4().hex, "rule": rule.name, "kind": rule.kind,
                    "status": "pending", "created_at": now,
                    "since": datetime.fromisoformat(since) if isinstance(since, str) else since})
                # Each alert commits alone: the next candidate's cooldown check sees it.
                session.commit()
        session.commit()
        pending = sql_alerts.pending_alerts(session=session,
                                            since=sql_alerts.default_since(now))
    # A rule removed since its alert was raised has no webhooks left to try.
    rules = {r.name for r in config.alert_rules}
    return [(alert_id, rule) for alert_id, rule in pending if rule in rules]


def evaluate_rule(session: Session, rule: AlertRule, config: DLQConfig, now: datetime,
                  outbox: OutboxStats | None) -> list[Candidate]:
    """What ``rule`` sees now: one candidate alert per subject over its threshold."""
    if rule.kind == "new_group":
        return [_group_candidate(g, config, title="New failure group", count=g["count"],
                                 since=g["first_seen_at"])
                for g in sql_groups.new_groups(
                    session=session, now=now,
                    since=now - timedelta(minutes=rule.window_minutes),
                    domain=rule.domain, limit=MAX_SUBJECTS)]
    if rule.kind == "group_rate":
        floor = int(rule.limit * rule.window_minutes) + 1  # more than N per minute
        rows = sql_groups.group_rates(session=session, now=now,
                                      window_minutes=rule.window_minutes, min_count=floor,
                                      domain=rule.domain, limit=MAX_SUBJECTS)
        return [_group_candidate(
            g, config, count=g["window_count"],
            since=now - timedelta(minutes=rule.window_minutes),
            title=f"Failure rate {g['window_count'] / rule.window_minutes:.1f}/min over "
                  f"{rule.window_minutes} min (threshold {rule.limit:g}/min)")
            for g in rows]
    if rule.kind == "sla_breach":
        rows = sql_alerts.sla_breaches(session=session, now=now,
                                       thresholds=dict(config.sla_thresholds),
                                       domain=rule.domain)
        return [{"subject": f"domain:{r['domain']}", "count": r["count"], "since": r["since"],
                 "title": f"{r['count']} open {r['domain']} entries breached their SLA",
                 "link": _entries_link(config, domain=r["domain"], status=None),
                 "details": {"domain": r["domain"]}}
                for r in rows if r["count"] >= max(rule.limit, 1)]
    if rule.kind == "review_backlog":
        backlog = sql_alerts.review_backlog(session=session, domain=rule.domain)
        if backlog["count"] <= rule.limit:
            return []
        scope = rule.domain or "all domains"
        return [{"subject": f"domain:{rule.domain or '*'}", "count": backlog["count"],
                 "since": backlog["since"],
                 "title": f"{backlog['count']} entries await review in {scope} "
                          f"(threshold {rule.limit:g})",
                 "link": _entries_link(config, domain=rule.domain, status="requires_review"),
                 "details": {"domain": rule.domain, "status": "requires_review"}}]
    return _outbox_candidates(rule, config, now, outbox)


def _outbox_candidates(rule: AlertRule, config: DLQConfig, now: datetime,
                       outbox: OutboxStats | None) -> list[Candidate]:
    if outbox is None:
        return []
    quarantined = outbox.quarantined  # records the relay gave up on (dlq._quarantine)
    age = outbox.oldest_age_seconds or 0.0
    too_old = rule.max_age_seconds is not None and age > rule.max_age_seconds
    if quarantined <= rule.limit and not too_old:
        return []
    what = []
    if quarantined > rule.limit:
        what.append(f"{quarantined} quarantined records")
    if too_old:
        what.append(f"oldest record {age:.0f}s old")
    return [{"subject": f"outbox:{config.outbox_path}"[:255], "count": outbox.depth,
             "since": (now - timedelta(seconds=age)) if age else None,
             "title": f"Outbox of the worker not draining: {', '.join(what)} "
                      f"({outbox.depth} waiting)",
             "link": _ui_link(config, None),
             "details": {"depth": outbox.depth, "quarantined": quarantined,
                         "oldest_age_seconds": round(age, 1)}}]


def _group_candidate(group: dict[str, Any], config: DLQConfig, *, title: str, count: int,
                     since: Any) -> Candidate:
    what = " ".join(p for p in (group["failure_type"], group["error_code"]) if p)
    message = f": {group['message'][:120]}" if group["message"] else ""
    return {"subject": f"group:{group['fingerprint']}", "count": int(count), "since": since,
            "title": f"{title} in {group['domain']}: {what}{message}",
            "link": _group_link(config, group),
            "details": {"fingerprint": group["fingerprint"], "domain": group["domain"],
                        "failure_type": group["failure_type"],
                        "error_code": group["error_code"], "open": group["open_count"],
                        "last_hour": group["last_hour"], "last_day": group["last_day"]}}


def _group_link(config: DLQConfig, group: dict[str, Any]) -> str:
    if config.console_url:
        return f"{config.console_url.rstrip('/')}/groups/{group['fingerprint']}"
    return _ui_link(config, f'DlqDomain="{group["domain"]}" AND '
                            f'DlqFailureType="{group["failure_type"]}"')


def _entries_link(config: DLQConfig, *, domain: str | None, status: str | None) -> str:
    if config.console_url:
        query: Sequence[tuple[str, str]] = [(k, v) for k, v in
                                            (("domain", domain), ("status", status)) if v]
        return f"{config.console_url.rstrip('/')}/" + (f"?{urlencode(query)}" if query else "")
    parts = [f'{k}="{v}"' for k, v in (("DlqDomain", domain), ("DlqStatus", status)) if v]
    return _ui_link(config, " AND ".join(parts) or None)


def _ui_link(config: DLQConfig, query: str | None) -> str:
    base = (f"{config.temporal_ui_url.rstrip('/')}/namespaces/{quote(config.namespace)}"
            "/workflows")
    return f"{base}?{urlencode({'query': query})}" if query else base
