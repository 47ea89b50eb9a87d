"""Signed tokens in the links of newsletters and confirmation mails (itsdangerous).

A token names a subscriber by their opaque id (random, see feeds.subscribers), never by their
address, and is signed with the `secret_key` setting, one salt per purpose, so that a token
made for one purpose or one subscriber is worth nothing for another. Preference tokens never
expire (the links in old newsletters must keep working); confirmation tokens expire
(`confirm_days`) and carry the nonce of the one sign-up they confirm; form tokens (CSRF)
are bound to the page they were served on and expire in two hours.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer

from .errors import FeedsError

FORM_SECONDS = 2 * 3600


class BadToken(FeedsError):
    """A token that was not made here, was altered, or was made for something else."""


class ExpiredToken(FeedsError):
    """A well-signed token past its time."""


@dataclass(frozen=True)
class Tokens:
    """Makes and reads the tokens of one secret."""

    secret: str
    confirm_seconds: int = 7 * 86400

    def _plain(self, purpose: str) -> URLSafeSerializer:
        return URLSafeSerializer(self.secret, salt=f"feeds.{purpose}")

    def _timed(self, purpose: str) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(self.secret, salt=f"feeds.{purpose}")

    def preferences(self, subscriber_id: str) -> str:
        """The token of a subscriber's own preferences page (and one-click unsubscribe)."""
        return str(self._plain("preferences").dumps(subscriber_id))

    def read_preferences(self, token: str) -> str:
        """The subscriber id a preferences token names; raises BadToken."""
        try:
            found = self._plain("preferences").loads(token)
        except BadSignature:
            raise BadToken("this link is not valid") from None
        if not isinstance(found, str):
            raise BadToken("this link is not valid")
        return found

    def confirmation(self, subscriber_id: str, nonce: str) -> str:
        """The token of the link that confirms one sign-up."""
        return str(self._timed("confirm").dumps([subscriber_id, nonce]))

    def read_confirmation(self, token: str) -> tuple[str, str]:
        """(subscriber id, nonce) of a confirmation token; raises BadToken or ExpiredToken."""
        try:
            found = self._timed("confirm").loads(token, max_age=self.confirm_seconds)
        except SignatureExpired:
            raise ExpiredToken("this confirmation link has expired") from None
        except BadSignature:
            raise BadToken("this confirmation link is not valid") from None
        if not (
            isinstance(found, list) and len(found) == 2 and all(isinstance(f, str) for f in found)
        ):
            raise BadToken("this confirmation link is not valid")
        return found[0], found[1]

    def bounce_tag(self, subscriber_id: str) -> str:
        """What a VERP envelope sender carries (`bounces+{tag}@…`): the id and a signature,
        lower case (some servers fold the case of local parts)."""
        mac = hmac.new(self.secret.encode(), f"bounce:{subscriber_id}".encode(), hashlib.sha256)
        return f"{subscriber_id}-{mac.hexdigest()[:12]}"

    def read_bounce_tag(self, tag: str) -> str | None:
        """The subscriber id of a VERP tag, None unless it was made here."""
        subscriber_id, _, _ = tag.lower().partition("-")
        return (
            subscriber_id
            if hmac.compare_digest(self.bounce_tag(subscriber_id), tag.lower())
            else None
        )

    def form(self, page: str) -> str:
        """The CSRF token of a form on `page` (its path)."""
        return str(self._timed("form").dumps(page))

    def form_is_valid(self, token: str, page: str) -> bool:
        try:
            return bool(self._timed("form").loads(token, max_age=FORM_SECONDS) == page)
        except BadSignature:  # SignatureExpired included
            return False
