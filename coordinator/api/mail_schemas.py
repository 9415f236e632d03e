"""Request and response schemas of the mail accounts and synced messages endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
FolderName = Annotated[str, Field(min_length=1, max_length=200, pattern=PRINTABLE)]


class AccountRequest(BaseModel):
    """The IMAP account to sync; the password is stored encrypted and never sent back."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(
        min_length=1,
        max_length=253,
        pattern=r"^[A-Za-z0-9.:-]+$",
        description="Host name or IP address",
    )
    port: int = Field(ge=1, le=65535, description="993 for tls, 143 for starttls or none")
    security: Literal["tls", "starttls", "none"]
    username: str = Field(min_length=1, max_length=320, pattern=PRINTABLE)
    password: str = Field(
        min_length=1, max_length=1024, pattern=r"^[^\x00\r\n]+$", description="Write-only"
    )
    folders: list[FolderName] | None = Field(
        None, max_length=100, description="Folders to sync; omitted: every selectable folder"
    )


class AccountResponse(BaseModel):
    host: str
    port: int
    security: Literal["tls", "starttls", "none"]
    username: str
    folders: list[str] | None
    updated_at: datetime
    auth: Literal["password", "oauth2"] = Field(
        "password", description="How the worker logs in: the password, or an OAuth2 token"
    )
    provider: str | None = Field(None, description="The OAuth2 provider (oauth2 accounts)")
    state: Literal["connected", "reauth_required"] = Field(
        "connected",
        description="reauth_required: the provider no longer honours the grant; syncs fail "
        "until the mailbox is connected again (see `reconnect`)",
    )
    state_reason: str | None = Field(None, description="What the provider said")
    reconnect: str | None = Field(
        None, description="When reauth_required: the route that connects the mailbox again"
    )


class FolderResponse(BaseModel):
    folder: str
    messages: int = Field(description="Messages stored from this folder")
    uidvalidity: int
    last_synced_at: datetime


class FolderList(BaseModel):
    folders: list[FolderResponse]


class MessageResponse(BaseModel):
    folder: str
    uidvalidity: int
    uid: int
    message_id: str | None
    subject: str | None
    sender: str | None = Field(description="The From header")
    recipients: str | None = Field(description="The To header")
    sent_at: datetime | None = Field(description="The Date header, when it parses")
    received_at: datetime = Field(description="The server's INTERNALDATE")
    flags: list[str]
    size: int


class MessagePage(BaseModel):
    messages: list[MessageResponse]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next, older page")


ChangeKind = Literal[
    "message_added", "flags_changed", "message_removed", "mailbox_reset", "folder_removed"
]


class ChangeResponse(BaseModel):
    """One entry of the caller's mail change log; which fields are set depends on `kind`."""

    position: int = Field(description="Its place in the caller's log; pass as `cursor` to go on")
    kind: ChangeKind
    folder: str
    uidvalidity: int | None = Field(description="The folder's UIDVALIDITY (unset: folder_removed)")
    uid: int | None = Field(description="message_added, flags_changed, message_removed")
    previous_uidvalidity: int | None = Field(description="mailbox_reset: the one before")
    rekeyed: bool | None = Field(
        description="mailbox_reset: true = every message kept, now under `uidvalidity`; "
        "false = every message of the folder dropped (message_added entries follow)"
    )
    message: MessageResponse | None = Field(
        description="message_added and flags_changed: the message as it was stored then"
    )
    recorded_at: datetime


class ChangePage(BaseModel):
    changes: list[ChangeResponse]
    next_cursor: str = Field(description="Pass as `cursor` for the entries after this page")
    head: str = Field(description="The newest position written; start a mirror from it")
    more: bool = Field(description="Whether entries after this page exist already")


class OAuth2ProviderResponse(BaseModel):
    provider: str = Field(description="The name in /accounts/oauth2/{provider}/start")
    title: str
    imap_host: str
    imap_port: int


class OAuth2ProvidersResponse(BaseModel):
    providers: list[OAuth2ProviderResponse]


class OAuth2StartResponse(BaseModel):
    authorization_url: str = Field(description="Navigate the browser here")
    expires_at: datetime = Field(description="The connect must be completed before this")


class SkippedMessage(BaseModel):
    folder: str
    uid: int
    reason: str = Field(description="Why it could not be stored")
    skipped_at: datetime


class SkippedList(BaseModel):
    skipped: list[SkippedMessage]
