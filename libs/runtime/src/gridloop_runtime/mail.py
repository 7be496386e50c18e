"""Mail to people outside gridloop (residents who left an e-mail), through the outbox's twin:
the timers table.

A pure rule decides a mail and asks for it with `schedule_mail(step, key, mail)`: a timer
row of kind `mail`, due now, written in the same transaction as the change that caused it —
so a mail exists if and only if its change committed. The timer runner fires it
(`MailSender`): it looks the address up (a service keeps addresses where it keeps people,
never in the timer), sends through SMTP and the row is marked fired in the same
transaction. A server that is down, refuses for now or times out re-arms the row
`MAIL_RETRY_S` later: mail is delayed, never lost. Rows are claimed with `FOR UPDATE SKIP
LOCKED`, so of any number of replicas one sends each mail, once; the one window left is a
process killed between the server's acceptance and the commit, and the mail's Message-ID is
stable (its key) so such a copy is recognisable as the same mail.

Production sends through the city's relay (`SMTP_*`, TLS); `make run` and the tests through
a local server that keeps every message in a folder (`devstack.LocalSmtp`).
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from email.utils import formataddr, formatdate
from typing import TYPE_CHECKING, Any, Literal

import structlog
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from .step import Step, Timer

if TYPE_CHECKING:  # the pure rules import Mail and schedule_mail: no database driver for them
    from .db import Conn

log = structlog.get_logger(__name__)

MAIL_TIMER = "mail"


@dataclass(frozen=True)
class Mail:
    """One message to one person: `to_ref` names them in the service's own register (the
    address is looked up when the mail is sent, so it never sits in a timer row)."""

    to_ref: str
    subject: str
    text: str
    lang: str = "zh"

    def payload(self) -> dict[str, Any]:
        return {
            "to_ref": self.to_ref,
            "subject": self.subject,
            "text": self.text,
            "lang": self.lang,
        }

    @classmethod
    def of(cls, payload: Mapping[str, Any]) -> Mail:
        return cls(
            to_ref=str(payload["to_ref"]),
            subject=str(payload["subject"]),
            text=str(payload["text"]),
            lang=str(payload.get("lang") or "zh"),
        )


def schedule_mail(step: Step, key: str, mail: Mail) -> None:
    """Ask for `mail` to be sent once this step's transaction commits. `key` is unique per
    mail (e.g. `<case>/<event id>/<person>`): setting it again before it is sent replaces it."""
    step.schedule(MAIL_TIMER, key, step.now(), mail.payload())


class MailSettings(BaseSettings):
    """The SMTP server mail goes out through (the same names in make run, tests, deploy/)."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    smtp_host: str = Field("127.0.0.1", alias="SMTP_HOST")
    smtp_port: int = Field(2525, ge=1, le=65535, alias="SMTP_PORT")
    # none (a local server only), starttls (port 587) or tls (implicit TLS, port 465)
    smtp_security: Literal["none", "starttls", "tls"] = Field("none", alias="SMTP_SECURITY")
    smtp_username: str | None = Field(None, alias="SMTP_USERNAME")
    smtp_password: SecretStr | None = Field(None, alias="SMTP_PASSWORD")
    # a CA bundle to trust for the relay's certificate (default: the system's)
    smtp_ca_file: str | None = Field(None, alias="SMTP_CA_FILE")
    smtp_timeout_s: float = Field(15.0, gt=0, alias="SMTP_TIMEOUT_S")
    mail_from: str = Field("noreply@gridloop.local", alias="MAIL_FROM")
    mail_from_name: str = Field("城市管理监督中心", alias="MAIL_FROM_NAME")
    # a mail the server did not take is tried again this much later
    mail_retry_s: float = Field(30.0, gt=0, alias="MAIL_RETRY_S")


_ID_SAFE = re.compile(r"[^A-Za-z0-9.!#$%&'*+\-=?^_`{|}~]")


def message_id(key: str, domain: str) -> str:
    """A stable Message-ID for a mail key: the same mail always carries the same id."""
    return f"<{_ID_SAFE.sub('.', key)}@{domain}>"


class MailFailed(Exception):
    """The server did not take the mail. `permanent`: it never will (an address refused)."""

    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.permanent = permanent


class Mailer:
    """Sends one message through the configured SMTP server (aiosmtplib)."""

    def __init__(self, settings: MailSettings) -> None:
        self.settings = settings
        self.domain = settings.mail_from.rpartition("@")[2] or "gridloop.local"

    def compose(self, to: str, mail: Mail, key: str) -> EmailMessage:
        s = self.settings
        msg = EmailMessage()
        msg["From"] = formataddr((s.mail_from_name, s.mail_from))
        msg["To"] = to
        msg["Subject"] = mail.subject
        msg["Date"] = formatdate(localtime=False, usegmt=True)
        msg["Message-ID"] = message_id(key, self.domain)
        msg["Auto-Submitted"] = "auto-generated"
        msg.set_content(mail.text)  # (clears Content-* headers: those come after)
        msg["Content-Language"] = "en" if mail.lang == "en" else "zh-CN"
        return msg

    async def send(self, to: str, mail: Mail, key: str) -> None:
        import aiosmtplib

        s = self.settings
        tls: dict[str, Any] = {"use_tls": False, "start_tls": False}
        if s.smtp_security != "none":
            context = ssl.create_default_context(cafile=s.smtp_ca_file or None)
            tls = {
                "use_tls": s.smtp_security == "tls",
                "start_tls": s.smtp_security == "starttls",
                "tls_context": context,
            }
        try:
            await aiosmtplib.send(
                self.compose(to, mail, key),
                hostname=s.smtp_host,
                port=s.smtp_port,
                username=s.smtp_username or None,
                password=(s.smtp_password.get_secret_value() or None) if s.smtp_password else None,
                timeout=s.smtp_timeout_s,
                **tls,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            raise MailFailed(str(exc), permanent=all(c >= 500 for c in codes)) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise MailFailed(f"{exc.code} {exc.message}", permanent=exc.code >= 500) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise MailFailed(repr(exc), permanent=False) from exc


AddressOf = Callable[["Conn", str], Awaitable[str | None]]
"""The address of a person by their ref in the service's register (None: none, or gone)."""


class MailSender:
    """The `mail` timer's handler (`ServiceDefinition.timers`): address, send, and on failure
    the row re-armed `MAIL_RETRY_S` later with the attempt counted."""

    def __init__(self, mailer: Mailer, address_of: AddressOf) -> None:
        self.mailer = mailer
        self.address_of = address_of
        self.sent = 0

    async def __call__(self, work: Any, timer: Timer) -> None:
        mail = Mail.of(timer.payload)
        to = await self.address_of(work.conn, mail.to_ref)
        if not to:
            log.info("mail dropped: no address", key=timer.key)
            return
        try:
            await self.mailer.send(to, mail, timer.key)
        except MailFailed as exc:
            attempts = int(timer.payload.get("attempts", 0)) + 1
            if exc.permanent:
                log.warning("mail refused for good", key=timer.key, error=str(exc))
                await work.conn.execute(
                    "UPDATE timers SET payload = payload || $2 WHERE id = $1",
                    timer.id,
                    {"attempts": attempts, "failed": str(exc)[:500]},
                )
                return
            retry = work.now() + timedelta(seconds=self.mailer.settings.mail_retry_s)
            log.warning(
                "mail not sent, will retry", key=timer.key, attempts=attempts, error=str(exc)
            )
            payload = {**timer.payload, "attempts": attempts, "last_error": str(exc)[:500]}
            work.schedule(MAIL_TIMER, timer.key, retry, payload)
            return
        self.sent += 1
        log.info("mail sent", key=timer.key, subject=mail.subject)
