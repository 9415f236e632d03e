"""The OAuth2 providers a mailbox can be connected with: Google and Microsoft 365 presets and
one generic OpenID Connect provider, each enabled by its client id in Settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from consumers.mail.accounts import Security
from core.settings import Settings

GOOGLE_DISCOVERY = "https://accounts.google.com/.well-known/openid-configuration"
MICROSOFT_DISCOVERY = (
    "https://login.microsoftonline.com/{tenant}/v2.0/.well-known/openid-configuration"
)


@dataclass(frozen=True)
class Provider:
    """Who signs the user in, what to ask for, and which IMAP server takes the tokens."""

    name: str
    title: str
    discovery_url: str
    client_id: str
    client_secret: str = field(repr=False)
    scopes: str
    imap_host: str
    imap_port: int
    imap_security: Security
    login_claims: tuple[str, ...]  # the first present names the IMAP login
    authorize_params: tuple[tuple[str, str], ...] = ()  # extra authorization request params


def configured_providers(settings: Settings) -> dict[str, Provider]:
    """Providers with a client id, by path name, in the order the page shows them."""
    providers: list[Provider] = []
    if settings.oauth2_google_client_id:
        providers.append(
            Provider(
                name="google",
                title="Google",
                discovery_url=GOOGLE_DISCOVERY,
                client_id=settings.oauth2_google_client_id,
                client_secret=settings.oauth2_google_client_secret.get_secret_value(),
                scopes="openid email https://mail.google.com/",
                imap_host="imap.gmail.com",
                imap_port=993,
                imap_security="tls",
                login_claims=("email",),
                # Google hands out a refresh token only for offline access, and again only
                # when consent is asked again.
                authorize_params=(("access_type", "offline"), ("prompt", "consent")),
            )
        )
    if settings.oauth2_microsoft_client_id:
        providers.append(
            Provider(
                name="microsoft",
                title="Microsoft 365",
                discovery_url=MICROSOFT_DISCOVERY.format(tenant=settings.oauth2_microsoft_tenant),
                client_id=settings.oauth2_microsoft_client_id,
                client_secret=settings.oauth2_microsoft_client_secret.get_secret_value(),
                scopes="openid email offline_access https://outlook.office.com/IMAP.AccessAsUser.All",
                imap_host="outlook.office365.com",
                imap_port=993,
                imap_security="tls",
                login_claims=("preferred_username", "email"),
            )
        )
    if settings.oauth2_oidc_client_id and settings.oauth2_oidc_discovery_url:
        scopes = settings.oauth2_oidc_scopes
        providers.append(
            Provider(
                name=settings.oauth2_oidc_name,
                title=settings.oauth2_oidc_title,
                discovery_url=settings.oauth2_oidc_discovery_url,
                client_id=settings.oauth2_oidc_client_id,
                client_secret=settings.oauth2_oidc_client_secret.get_secret_value(),
                scopes=scopes,
                imap_host=settings.oauth2_oidc_imap_host,
                imap_port=settings.oauth2_oidc_imap_port,
                imap_security=settings.oauth2_oidc_imap_security,
                login_claims=(settings.oauth2_oidc_login_claim,),
                # OpenID Connect Core 11: offline_access is granted only after consent.
                authorize_params=(("prompt", "consent"),) if "offline_access" in scopes else (),
            )
        )
    return {p.name: p for p in providers}
