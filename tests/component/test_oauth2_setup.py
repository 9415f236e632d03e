"""OAuth2 pieces without services: the SASL messages (RFC 7628), the mechanism chosen, the
provider presets and settings that cannot work."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from consumers.mail.oauth2_login import NoOAuth2Mechanism, initial_response, mechanism
from consumers.mail.oauth2_providers import configured_providers
from core.settings import Settings


def test_oauthbearer_is_chosen_first_then_xoauth2() -> None:
    gmail = [b"IMAP4rev1", b"AUTH=XOAUTH2", b"AUTH=OAUTHBEARER", b"AUTH=PLAIN"]
    outlook = [b"IMAP4rev1", b"AUTH=PLAIN", b"AUTH=XOAUTH2", b"SASL-IR"]
    assert mechanism(gmail) == "OAUTHBEARER"
    assert mechanism(outlook) == "XOAUTH2"
    with pytest.raises(NoOAuth2Mechanism, match="neither OAUTHBEARER nor XOAUTH2"):
        mechanism([b"IMAP4rev1", b"AUTH=PLAIN"])


def test_the_initial_responses_are_rfc_7628_s_and_google_s_formats() -> None:
    assert initial_response("OAUTHBEARER", "ann@example.org", "tok") == (
        b"n,a=ann@example.org,\x01auth=Bearer tok\x01\x01"
    )
    # RFC 5801: '=' and ',' in the authorization identity are escaped.
    assert initial_response("OAUTHBEARER", "a=b,c", "t").startswith(b"n,a=a=3Db=2Cc,\x01")
    assert initial_response("XOAUTH2", "ann@example.org", "tok") == (
        b"user=ann@example.org\x01auth=Bearer tok\x01\x01"
    )


def test_presets_name_the_providers_imap_servers_and_scopes() -> None:
    providers = configured_providers(
        Settings(
            oauth2_google_client_id="g",
            oauth2_microsoft_client_id="m",
            oauth2_microsoft_tenant="contoso.onmicrosoft.com",
        )
    )
    google, microsoft = providers["google"], providers["microsoft"]
    assert (google.imap_host, google.imap_port) == ("imap.gmail.com", 993)
    assert "https://mail.google.com/" in google.scopes.split()
    assert ("access_type", "offline") in google.authorize_params
    assert (microsoft.imap_host, microsoft.imap_port) == ("outlook.office365.com", 993)
    assert {"https://outlook.office.com/IMAP.AccessAsUser.All", "offline_access"} <= set(
        microsoft.scopes.split()
    )
    assert "/contoso.onmicrosoft.com/v2.0/" in microsoft.discovery_url
    assert configured_providers(Settings()) == {}  # none without a client id


def test_a_generic_provider_without_its_imap_server_is_refused_at_start() -> None:
    with pytest.raises(ValidationError, match="SYNC_OAUTH2_OIDC_IMAP_HOST"):
        Settings(oauth2_oidc_client_id="c", oauth2_oidc_discovery_url="https://id.example/")
