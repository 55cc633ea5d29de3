"""Notifications: an alert as a webhook body (generic JSON or Slack), and posting it.

A notification says what happened, how many, since when, and where to look
(a console or Web UI link). It never carries an entry's data.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from dlq._alert_rules import AlertWebhook

__all__ = ["DeliveryError", "notification_body", "post_notification", "slack_body"]

USER_AGENT = "temporal-dlq-alerts/1"


class DeliveryError(Exception):
    """A webhook did not take the notification.

    Attributes:
        retryable: False for an answer that a retry would not change (4xx but 408/429).
        status_code: The HTTP status, or None when no answer came.
    """

    def __init__(self, message: str, *, retryable: bool, status_code: int | None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status_code = status_code


def notification_body(alert: dict[str, Any]) -> dict[str, Any]:
    """The generic JSON notification of an alert record (see :mod:`dlq._sql.alerts`)."""
    return {
        "source": "temporal-dlq",
        "alert_id": alert["id"],
        "rule": alert["rule"],
        "kind": alert["kind"],
        "subject": alert["subject"],
        "title": alert["title"],
        "count": alert["count"],
        "since": alert["since"],
        "link": alert["link"],
        "raised_at": alert["created_at"],
        "details": alert["details"],
    }


def slack_body(alert: dict[str, Any]) -> dict[str, Any]:
    """A Slack-compatible message (incoming webhooks, and chat tools that accept their format)."""
    since = f" since {alert['since']}" if alert.get("since") else ""
    lines = [f"*{_escape(alert['title'])}*",
             f"{alert['count']} (rule `{_escape(alert['rule'])}`){since}"]
    if alert.get("link"):
        lines.append(f"<{alert['link']}|Open in the DLQ>")
    text = "\n".join(lines)
    return {"text": text,
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}


def _escape(text: str) -> str:
    # Slack's mrkdwn control characters (its documented escaping).
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def post_notification(webhook: AlertWebhook, alert: dict[str, Any], *,
                      timeout: float = 10.0) -> int:
    """POST an alert to a webhook in its format.

    Returns:
        The HTTP status (2xx).

    Raises:
        DeliveryError: Any other status, or no answer (timeout, refused, DNS).
    """
    body = slack_body(alert) if webhook.format == "slack" else notification_body(alert)
    request = urllib.request.Request(
        webhook.url, data=json.dumps(body, default=str).encode(), method="POST",
        headers={"Content-Type": "application/json", "User-Agent": USER_AGENT,
                 **webhook.headers})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        retryable = err.code >= 500 or err.code in (408, 429)
        raise DeliveryError(f"webhook answered HTTP {err.code}", retryable=retryable,
                            status_code=err.code) from None
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise DeliveryError(f"webhook unreachable: {reason}", retryable=True,
                            status_code=None) from None
