"""The mail change feed: a mirror built from GET /mail/changes alone equals GET /mail/messages
after appends, flag changes, expunges and UIDVALIDITY changes (re-keyed and started over)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from consumers.executors import TaskSpec
from consumers.imap.executor import ImapExecutor, ImapSettings
from consumers.mail.accounts import AccountStore, ImapAccount
from consumers.mail.message_store import MessageStore
from consumers.mail.password_box import PasswordBox, new_key
from coordinator.dev.dovecot import Dovecot
from tests.integration.app_harness import bearer, running_app, settings_for, user_token
from tests.support.mailbox import append, imap, new_login, new_uidvalidity
from tests.support.random_refs import random_user

KEY = new_key()
SETTINGS = ImapSettings(allowed_hosts=frozenset({"127.0.0.1"}), batch_size=4)
Key = tuple[str, int, int]


@pytest.fixture(scope="module")
def client(shared_database_url: str) -> Iterator[TestClient]:
    settings = settings_for(shared_database_url, mail_key=KEY, mail_allowed_hosts="127.0.0.1")
    with running_app(settings) as client:
        yield client


class Mirror:
    """What a downstream service keeps, from the feed alone."""

    def __init__(self, client: TestClient, user: str) -> None:
        self.client, self.headers = client, bearer(user_token(user))
        self.messages: dict[Key, dict[str, Any]] = {}
        self.cursor = "0"
        self.kinds: list[str] = []

    def follow(self, limit: int = 5) -> None:
        while True:
            answer = self.client.get(
                f"/mail/changes?cursor={self.cursor}&limit={limit}", headers=self.headers
            )
            assert answer.status_code == 200, answer.text
            page = answer.json()
            for change in page["changes"]:
                self.apply(change)
            self.cursor = page["next_cursor"]
            if not page["more"]:
                assert page["next_cursor"] == page["head"]
                return

    def apply(self, change: dict[str, Any]) -> None:
        self.kinds.append(change["kind"])
        folder = change["folder"]
        match change["kind"]:
            case "message_added" | "flags_changed":
                m = change["message"]
                self.messages[(folder, m["uidvalidity"], m["uid"])] = m
            case "message_removed":
                self.messages.pop((folder, change["uidvalidity"], change["uid"]), None)
            case "mailbox_reset":
                kept = {k: m for k, m in self.messages.items() if k[0] == folder}
                for key in kept:
                    del self.messages[key]
                if change["rekeyed"]:
                    for (_, _, uid), m in kept.items():
                        moved = {**m, "uidvalidity": change["uidvalidity"]}
                        self.messages[(folder, change["uidvalidity"], uid)] = moved
            case "folder_removed":
                for key in [k for k in self.messages if k[0] == folder]:
                    del self.messages[key]

    def listed(self) -> dict[Key, dict[str, Any]]:
        """GET /mail/messages, every page."""
        found: dict[Key, dict[str, Any]] = {}
        cursor = ""
        while True:
            page = self.client.get(f"/mail/messages?limit=7{cursor}", headers=self.headers).json()
            for m in page["messages"]:
                found[(m["folder"], m["uidvalidity"], m["uid"])] = m
            if not page["next_cursor"]:
                return found
            cursor = f"&cursor={page['next_cursor']}"


def sync(engine: Engine, user: str, settings: ImapSettings = SETTINGS) -> dict[str, Any]:
    executor = ImapExecutor(AccountStore(engine, PasswordBox(KEY)), MessageStore(engine), settings)
    return executor.run(TaskSpec(user, random_user("t"), "incremental"), _quiet, threading.Event())


def _quiet(percent: float, stats: dict[str, Any]) -> None:
    pass


def registered(engine: Engine, account: ImapAccount) -> str:
    user = random_user()
    AccountStore(engine, PasswordBox(KEY)).put(user, account)
    return user


def test_a_mirror_from_the_feed_equals_the_listed_messages(
    client: TestClient, engine: Engine, dovecot: Dovecot
) -> None:
    account = new_login(dovecot)
    append(account, 10)
    append(account, 3, folder="Work", tag="w")
    user = registered(engine, account)
    mirror = Mirror(client, user)

    def synced_and_equal() -> dict[str, Any]:
        stats = sync(engine, user)
        mirror.follow()
        assert mirror.messages == mirror.listed()
        return stats

    assert synced_and_equal()["fetched"] == 13
    with imap(account) as imap_client:
        imap_client.select_folder("INBOX")
        imap_client.add_flags([2, 3, 4], [b"\\Seen"])
        imap_client.delete_messages([5, 6])
        imap_client.expunge()
    append(account, 2, start=20)
    assert synced_and_equal()["removed"] == 2
    assert mirror.kinds.count("flags_changed") == 3
    new_uidvalidity(dovecot, account)  # same UIDs, new UIDVALIDITY: re-keyed
    rekeyed = synced_and_equal()
    assert (rekeyed["rekeyed"], rekeyed["fetched"]) == (1, 0)
    assert mirror.kinds[-1] == "mailbox_reset"  # one entry, not one per message
    with imap(account) as imap_client:
        imap_client.delete_folder("Work")
    append(account, 2, folder="Work", tag="again")  # new messages, new UIDVALIDITY
    started_over = synced_and_equal()
    assert (started_over["started_over"], started_over["fetched"]) == (1, 2)
    with imap(account) as imap_client:
        imap_client.delete_folder("Work")
    synced_and_equal()
    assert mirror.kinds[-1] == "folder_removed"
    assert mirror.kinds.count("mailbox_reset") == 2


def test_cursors_past_retention_ahead_or_malformed_are_refused(
    client: TestClient, engine: Engine, dovecot: Dovecot
) -> None:
    account = new_login(dovecot)
    append(account, 3)
    user = registered(engine, account)
    headers = bearer(user_token(user))
    sync(engine, user)
    head = client.get("/mail/changes?cursor=0", headers=headers).json()["head"]
    assert head == "3"
    append(account, 1, start=9)
    sync(engine, user, replace(SETTINGS, changes_retention_seconds=0))  # prunes every entry
    gone = client.get("/mail/changes?cursor=0", headers=headers)
    assert gone.status_code == 410, gone.text
    assert gone.json()["type"].endswith("mail-cursor-expired")
    assert "retention" in gone.json()["detail"]
    caught_up = client.get("/mail/changes?cursor=4", headers=headers).json()
    assert caught_up["changes"] == [] and caught_up["head"] == "4"
    for bad in ("cursor=5", "cursor=-1", "cursor=x", "cursor=01", "limit=0", "limit=1001"):
        answer = client.get(f"/mail/changes?{bad}", headers=headers)
        assert answer.status_code == 422, (bad, answer.text)
    other = client.get("/mail/changes?cursor=0", headers=bearer(user_token(random_user())))
    assert other.json() == {"changes": [], "next_cursor": "0", "head": "0", "more": False}
