"""A private Dovecot (Debian's dovecot-imapd) on a loopback port: tests, `syncctl dev`, bench.

Its own config, passwd-file logins and maildirs under one folder. As root, Dovecot's login
processes run as Debian's `dovenull` and `dovecot` users and mail is owned by `nobody`
(`first_valid_uid` admits it; Dovecot refuses mail access as root); otherwise everything runs
as the current user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from coordinator.dev.embedded import free_port, wait_for_port
from coordinator.dev.processes import stop_processes

INSTALL_HINT = "install Debian's dovecot-imapd (apt-get install dovecot-imapd)"
CONFIG = """\
protocols = imap
listen = 127.0.0.1
base_dir = {run_dir}
state_dir = {root}/state
log_path = {root}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login{oauth2_mechanisms}
auth_failure_delay = 0
# Any login name: the tests log in with spaces, quotes, backslashes and non-ASCII in it.
auth_username_chars =
default_login_user = {login_user}
default_internal_user = {internal_user}
first_valid_uid = {uid}
last_valid_uid = {uid}
first_valid_gid = {gid}
valid_chroot_dirs = {root}/mail
mail_location = maildir:~/
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {root}/passwd.d/%u
  mechanisms = plain login
}}
{oauth2_passdb}userdb {{
  driver = static
  args = uid={uid} gid={gid} home={home}
}}
service imap-login {{
  {login_chroot}
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service auth {{
  user = {auth_user}
}}
service anvil {{
  # No growing delay for logins from an address after a failed one: tests fail on purpose.
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
protocol imap {{
  mail_max_userip_connections = 1000
  {imap_capability}
}}
# What a caller adds (TLS certificates, listeners, limits) goes in this file before the start.
!include_try {root}/local.conf
"""


# What Dovecot 2.3 offers after login (`doveconf -d imap_capability` is empty: built in).
CAPABILITIES = (
    "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY THREAD=REFERENCES "
    "THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN "
    "NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES "
    "WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW "
    "STATUS=SIZE SAVEDATE LITERAL+ NOTIFY"
)


def _capability_without(without: frozenset[str]) -> str:
    if not without:
        return ""
    kept = [c for c in CAPABILITIES.split() if c.upper() not in without]
    return f"imap_capability = {' '.join(kept)}"


OAUTH2_PASSDB = """\
passdb {{
  driver = oauth2
  mechanisms = {mechanisms}
  args = {root}/oauth2.conf.ext
}}
"""
# Bearer tokens checked by the provider's introspection endpoint (RFC 7662), which also sees a
# revoked token; the client authenticates with client_secret_post.
OAUTH2_CONFIG = """\
introspection_mode = post
introspection_url = {introspection_url}
client_id = {client_id}
client_secret = {client_secret}
force_introspection = yes
username_attribute = sub
active_attribute = active
active_value = true
"""


@dataclass(frozen=True)
class OAuth2Passdb:
    """Where an optional `oauth2` passdb introspects the tokens it is shown (XOAUTH2,
    OAUTHBEARER), and as which client of the provider."""

    introspection_url: str
    client_id: str
    client_secret: str = field(repr=False)
    mechanisms: str = "xoauth2 oauthbearer"  # what the server advertises


def dovecot_binary() -> str | None:
    """Where Dovecot is installed, or None."""
    return shutil.which("dovecot") or next(
        (p for p in ("/usr/sbin/dovecot",) if os.access(p, os.X_OK)), None
    )


@dataclass
class Dovecot:
    root: Path
    port: int
    process: subprocess.Popen[bytes]
    uid: int
    gid: int
    users: dict[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"

    def add_user(self, name: str, password: str) -> None:
        """A login that works at once."""
        if not name.isprintable() or ":" in name or "/" in name or name.startswith("."):
            # ':' separates the passwd-file's fields and the name is a file's name there.
            raise ValueError(f"login names here are printable, without ':' or '/': {name!r}")
        self.users[name] = password
        home = self.maildir(name)
        if not home.exists():  # made here, so Dovecot's first login does not log a chdir error
            home.mkdir(mode=0o700)
            os.chown(home, self.uid, self.gid)
        # A file per login: Dovecot checks a known passwd-file for changes at most once a
        # second, but opens a file it has not seen yet at once.
        path = self.root / "passwd.d" / name
        # Dovecot looks a passwd-file up by the name escaped as its variables are (\, " and ').
        key = "".join("\\" + c if c in "\\\"'" else c for c in name)
        path.write_text(f"{key}:{password}\n")
        path.chmod(0o644)

    def maildir(self, user: str) -> Path:
        """The user's INBOX maildir (for writing messages directly, as the benchmark does);
        files there must belong to `uid`/`gid`."""
        return self.root / "mail" / user

    def config_path(self) -> Path:
        return self.root / "dovecot.conf"

    def kick(self, user: str) -> None:
        """End the user's sessions now (`doveadm kick`), as a server does when it drops a
        session (Exchange Online when the session's OAuth2 token expires)."""
        doveadm = shutil.which("doveadm") or "/usr/bin/doveadm"
        subprocess.run(
            [doveadm, "-c", str(self.config_path()), "kick", user],
            check=True,
            capture_output=True,
            timeout=30,
        )

    def stop(self) -> None:
        stop_processes(self.process)
        run_dir = _run_dir(self.root)
        if not run_dir.is_relative_to(self.root):
            shutil.rmtree(run_dir, ignore_errors=True)


def start_dovecot(
    root: Path,
    port: int | None = None,
    oauth2: OAuth2Passdb | None = None,
    without: frozenset[str] = frozenset(),
    extra_config: str = "",
) -> Dovecot:
    """Dovecot in the foreground on 127.0.0.1:`port`; its data and config live in `root`.

    With `oauth2`, logins by XOAUTH2/OAUTHBEARER are checked by the provider it names, beside
    the passwd-file logins (PLAIN/LOGIN), for the same mailboxes. `without` names capabilities
    it must not offer (say CONDSTORE and QRESYNC, as servers without them answer)."""
    binary = dovecot_binary()
    if binary is None:
        raise RuntimeError(f"Dovecot is not installed: {INSTALL_HINT}")
    port = port or free_port()
    if os.geteuid() == 0:
        # Dovecot refuses mail access as root. Each process that drops to another user is
        # chrooted first (login: its run folder, mail: `mail/`, "/./" in the home), and the
        # passwd-files are read as root, so `root` may sit in a folder only root can enter.
        login, internal, chroot = "dovenull", "dovecot", ""
        mail_user, auth_user = pwd.getpwnam("nobody"), "root"
        home = f"{root}/mail/./%u"
    else:
        mail_user = pwd.getpwuid(os.getuid())
        login = internal = auth_user = mail_user.pw_name
        chroot = "chroot ="  # only root can chroot
        home = f"{root}/mail/%u"
    for sub in ("run", "state", "mail", "passwd.d"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    run_dir = _run_dir(root, create=True)
    os.chown(root / "mail", mail_user.pw_uid, mail_user.pw_gid)
    if oauth2 is not None:
        (root / "oauth2.conf.ext").write_text(
            OAUTH2_CONFIG.format(
                introspection_url=oauth2.introspection_url,
                client_id=oauth2.client_id,
                client_secret=oauth2.client_secret,
            )
        )
    (root / "dovecot.conf").write_text(
        CONFIG.format(
            oauth2_mechanisms=f" {oauth2.mechanisms}" if oauth2 else "",
            oauth2_passdb=OAUTH2_PASSDB.format(root=root, mechanisms=oauth2.mechanisms)
            if oauth2
            else "",
            root=root,
            run_dir=run_dir,
            port=port,
            login_user=login,
            login_chroot=chroot,
            auth_user=auth_user,
            home=home,
            internal_user=internal,
            uid=mail_user.pw_uid,
            gid=mail_user.pw_gid,
            imap_capability=_capability_without(without),
        )
        + extra_config  # settings of a caller's own (bench/mail_watch: process limits)
    )
    log = open(root / "dovecot.out", "ab")  # noqa: SIM115
    process = subprocess.Popen(
        [binary, "-F", "-c", str(root / "dovecot.conf")],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # stopped by whoever started it, after its clients (embedded.py)
    )
    server = Dovecot(root, port, process, mail_user.pw_uid, mail_user.pw_gid)
    server.add_user("_probe", os.urandom(8).hex())
    try:
        wait_for_port(port)
    except TimeoutError:
        server.stop()
        raise RuntimeError(
            f"Dovecot did not listen on {port}; see {root / 'dovecot.log'} and dovecot.out"
        ) from None
    return server


# Dovecot's sockets live in base_dir; a Unix socket's path is at most 107 bytes, and the
# longest (token-login/imap-urlauth) failed to bind under a deep pytest folder.
MAX_RUN_DIR = 70


def _run_dir(root: Path, create: bool = False) -> Path:
    """`root/run`, or when that is too long for a socket path, a short folder named in
    `root/run-dir` (made here once, removed by `Dovecot.stop`)."""
    if len(str(root / "run")) <= MAX_RUN_DIR:
        return root / "run"
    named = root / "run-dir"
    if create and not named.exists():
        named.write_text(tempfile.mkdtemp(prefix="dovecot-run-"))
    return Path(named.read_text()) if named.exists() else root / "run"
