"""The web console: server-rendered pages over the same service calls as the API.

Pages: sign-in, the list with a facet sidebar, filters and search, an entry
(fields, data as captured and as edited, attempts, audit trail, a link to the
Temporal Web UI, the actions the caller's role allows), and the bulk redrive
flow (filter, dry-run preview, launch, live progress with pause, resume and
cancel). Actions are plain HTML forms carrying the CSRF token; they redirect
back with a message. The only script polls a redrive's progress.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from dlq._errors import DLQCommandPendingError, DLQError
from dlq._filters import FILTER_KEYS
from dlq._http.auth import COOKIE, AuthError, Identity, csrf_token, require
from dlq._http.deps import query_filters, query_link, service
from dlq._http.entries import ListQuery, entry_detail
from dlq._models import DLQStatus
from dlq._patch import EDITABLE_FIELDS
from dlq._tokens import find_token

__all__ = ["render_error", "router"]

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=2, default=str)
Page = Annotated[Identity, require("viewer")]
Operator = Annotated[Identity, require("operator")]
Admin = Annotated[Identity, require("admin")]
STATUSES = [s.value for s in DLQStatus]


def _render(request: Request, name: str, identity: Identity | None, status: int = 200,
            **context: Any) -> HTMLResponse:
    settings = request.app.state.auth
    return templates.TemplateResponse(request, name, {
        "me": identity, "csrf": csrf_token(identity, settings) if identity else "",
        "flash": request.query_params.get("flash"),
        "flash_kind": request.query_params.get("kind", "ok"), **context},
        status_code=status)


def render_error(request: Request, status: int, message: str, kind: str) -> Response:
    """An error page (the API answers JSON instead)."""
    return _render(request, "error.html", getattr(request.state, "identity", None),
                   status=status, status_code=status, message=message, kind=kind)


def _back(url: str, message: str, kind: str = "ok") -> RedirectResponse:
    sep = "&" if "?" in url else "?"
    return RedirectResponse(f"{url}{sep}{urlencode({'flash': message, 'kind': kind})}",
                            status_code=303)


# --- signing in ---------------------------------------------------------------------


@router.get("/login")
async def login_page(request: Request, next: str = "/") -> Response:
    """The sign-in form (a token from DLQ_API_TOKENS)."""
    return _render(request, "login.html", None, next=_safe_next(next))


def _safe_next(target: str) -> str:
    # Only a path on this site: never an open redirect.
    return target if target.startswith("/") and not target.startswith("//") else "/"


@router.post("/login")
async def login(request: Request, token: Annotated[str, Form()],
                next: Annotated[str, Form()] = "/") -> Response:
    """Check the token and keep it in an HttpOnly, SameSite=Strict cookie."""
    if request.headers.get("sec-fetch-site") == "cross-site":
        raise AuthError(403, "cross-site request refused")
    found = find_token(request.app.state.auth.tokens, token.strip())
    if found is None:
        return _render(request, "login.html", None, status=401, next=_safe_next(next),
                       error="unknown token")
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(COOKIE, token.strip(), httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path="/")
    return response


@router.post("/logout")
async def logout(request: Request, _: Page) -> Response:
    """Forget the cookie."""
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


# --- the list --------------------------------------------------------------------


@router.get("/")
async def list_page(request: Request, me: Page, query: Annotated[ListQuery, Query()]
                    ) -> Response:
    """Entries with a facet sidebar (status x domain counts), filters and a search box."""
    svc = service(request)
    page = await svc.list_entries(query_filters(query), page=query.page,
                                  page_size=query.page_size)
    one_status = query.status[0] if len(query.status) == 1 else None
    facets = await svc.get_facet_counts(status=one_status, domain=query.domain)
    return _render(request, "list.html", me, page=page, facets=facets, query=query,
                   statuses=STATUSES, link=lambda **c: query_link("/", query, **c),
                   redrive_link="/redrives/new?" + urlencode(
                       [(k, v) for k, v in query_filters(query).items()
                        if k in FILTER_KEYS and not isinstance(v, list)]
                       + [("status", s) for s in query.status]))


# --- one entry -------------------------------------------------------------------------


@router.get("/entries/{ref}")
async def entry_page(request: Request, ref: str, me: Page) -> Response:
    """An entry: status and budget, fields, data (original vs edited), attempts, audit, actions."""
    entry = await entry_detail(request, ref)
    config = request.app.state.config
    ui = (f"{config.temporal_ui_url.rstrip('/')}/namespaces/{quote(config.namespace)}"
          f"/workflows/{quote(entry['workflow_id'])}")
    return _render(request, "entry.html", me, entry=entry, ui_url=ui,
                   editable=EDITABLE_FIELDS)


async def _act(request: Request, ref: str, action: Any, done: str) -> Response:
    """Run an entry action; come back to the entry page with what happened."""
    svc = service(request)
    try:
        pk = await svc.resolve_entry_id(ref)
        out = await action(svc, pk)
    except DLQCommandPendingError as err:
        # Sent, not confirmed: not a failure, so not shown as one.
        return _back(f"/entries/{quote(ref)}", str(err), "pending")
    except (DLQError, ValueError) as err:
        return _back(f"/entries/{quote(ref)}", f"{type(err).__name__}: {err}", "error")
    if isinstance(out, dict) and out.get("success") is False:
        return _back(f"/entries/{quote(pk)}", f"replay failed: {out.get('message')}", "error")
    return _back(f"/entries/{quote(pk)}", done)


@router.post("/entries/{ref}/retry")
async def retry(request: Request, ref: str, me: Operator) -> Response:
    """Retry within the budget."""
    return await _act(request, ref, lambda s, pk: s.retry_entry(pk, actor=me.name),
                      "replay succeeded")


@router.post("/entries/{ref}/resolve")
async def resolve(request: Request, ref: str, me: Operator,
                  notes: Annotated[str, Form()] = "",
                  status: Annotated[str, Form()] = "resolved") -> Response:
    """Resolve or discard."""
    return await _act(request, ref, lambda s, pk: s.resolve_entry(pk, notes, "manual", status,
                                                                  actor=me.name),
                      f"entry {status}")


@router.post("/entries/{ref}/force-redrive")
async def force_redrive(request: Request, ref: str, me: Admin,
                        reason: Annotated[str, Form()] = "",
                        ticket_url: Annotated[str, Form()] = "") -> Response:
    """Force-redrive past the cap (admins)."""
    return await _act(request, ref, lambda s, pk: s.force_redrive_entry(
        pk, actor_id=me.name, reason=reason, ticket_url=ticket_url or None),
        "force-redrive succeeded")


@router.post("/entries/{ref}/edit")
async def edit(request: Request, ref: str, me: Operator,
               field: Annotated[str, Form()], patch: Annotated[str, Form()],
               reason: Annotated[str, Form()] = "") -> Response:
    """Edit before replay: a JSON merge patch on one data field."""
    def call(s: Any, pk: str) -> Any:
        try:
            value = json.loads(patch)
        except ValueError as err:
            raise ValueError(f"the patch is not JSON: {err}") from None
        if field not in EDITABLE_FIELDS:
            raise ValueError(f"{field!r} is not editable")
        return s.edit_entry_data(pk, actor=me.name, reason=reason, **{field: value})

    return await _act(request, ref, call, "data edited; the next replay uses it")


# --- bulk redrive ------------------------------------------------------------------------


@router.get("/redrives/new")
async def redrive_preview(request: Request, me: Operator,
                          query: Annotated[ListQuery, Query()]) -> Response:
    """The dry-run preview of a redrive of the filtered entries, and the launch form."""
    filters = query_filters(query)
    preview = await service(request).bulk_replay(filters, dry_run=True)
    return _render(request, "redrive_new.html", me, preview=preview, filters=filters)


@router.post("/redrives")
async def redrive_start(request: Request, me: Operator) -> Response:
    """Launch the previewed redrive."""
    form = await request.form()
    filters = json.loads(str(form.get("filters") or "{}"))
    rate = str(form.get("rate_per_second") or "").strip()
    try:
        out = await service(request).bulk_replay(
            filters, actor_id=me.name, reason=str(form.get("reason") or ""),
            rate_per_second=float(rate) if rate else None,
            canary=int(str(form.get("canary") or 0)),
            page_size=int(str(form.get("page_size") or 50)))
    except (DLQError, ValueError) as err:
        query = urlencode([(k, v) for k, v in filters.items() if not isinstance(v, list)]
                          + [("status", s) for s in filters.get("status", [])])
        return _back(f"/redrives/new?{query}", f"{type(err).__name__}: {err}", "error")
    return _back(f"/redrives/{out['bulk_id']}", f"redrive of {out['total']} entries started")


@router.get("/redrives/{ref}")
async def redrive_page(request: Request, ref: str, me: Page) -> Response:
    """Live progress, with pause, resume and cancel."""
    svc = service(request)
    progress = await svc.get_bulk_replay(ref)
    return _render(request, "redrive.html", me, progress=progress.model_dump(mode="json"),
                   workflow_id=svc.bulk_workflow_id(ref))


@router.post("/redrives/{ref}/{command}")
async def redrive_control(request: Request, ref: str, command: str, _: Operator) -> Response:
    """Pause, resume or cancel."""
    try:
        await service(request).signal_bulk_replay(ref, command)  # type: ignore[arg-type]
    except (DLQError, ValueError) as err:
        return _back(f"/redrives/{quote(ref)}", f"{type(err).__name__}: {err}", "error")
    return _back(f"/redrives/{quote(ref)}", f"{command} sent")
