"""The console's links: one query_link for the entry list and the groups page."""

from __future__ import annotations

from dlq._http.deps import query_filters, query_link
from dlq._http.entries import ListQuery
from dlq._http.groups import GroupQuery


def test_a_filter_change_goes_back_to_page_one_and_lists_repeat_their_key() -> None:
    query = ListQuery(status=["pending"], domain="payment", page=3)
    assert query_link("/", query, page=4) == "/?status=pending&domain=payment&page=4"
    assert query_link("/", query, domain=None) == "/?status=pending"
    assert query_link("/", query, status=["pending", "requires_review"]) == (
        "/?status=pending&status=requires_review&domain=payment")
    assert query_link("/", ListQuery()) == "/"
    assert query_link("/", ListQuery(user_id=0)) == "/?user_id=0"  # 0 is a value


def test_group_links_leave_out_unset_filters_and_default_paging() -> None:
    query = GroupQuery(domain="payment", open=False, page=2)
    assert query_link("/groups", query, page=1) == "/groups?domain=payment"
    assert query_link("/groups", GroupQuery(open=True), page=2) == "/groups?open=True&page=2"
    assert query_filters(GroupQuery(domain="payment", open=False, page=5)) == {
        "domain": "payment"}
