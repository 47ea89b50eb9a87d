"""The subscription service: sign-up with double opt-in, confirmation, preferences and RFC 8058
one-click unsubscribe, as a Flask app (`create_app`) the author runs beside the static site.
The only module that imports Flask.

    gunicorn 'feeds.web:create_app()'        # settings from FEEDS_* and ./pyproject.toml
    feeds subscribers serve --port 8001      # the same app under waitress

Pages (under `subscriptions_url`, see feeds.urls): GET / (sign-up), POST /subscribe,
GET|POST /confirm/{token}, GET|POST /p/{token}. Only the confirm button confirms (mail scanners
that follow links confirm nobody); `POST /p/{token}` with the body `List-Unsubscribe=One-Click`
unsubscribes at once, without cookie or form token; every other form carries a signed token
bound to its page. Sign-up answers the same whoever the address is, so nobody can learn who
subscribes. Every response carries a strict Content-Security-Policy, `X-Frame-Options: DENY`
and `Referrer-Policy: no-referrer` (tokens are in the URLs).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
from flask import Blueprint, Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException

from .config import Settings, load_settings
from .errors import FeedsError
from .mail import parse_address
from .model import LANGS, Lang, clean_text
from .service import MAX_FORM_BYTES, ONE_CLICK, SECURITY_HEADERS, Service, parse_form
from .service_text import SERVICE_TEXT
from .subscribers import Subscriber, parse_lang
from .tokens import BadToken, ExpiredToken
from .urls import (
    SERVICE_CONFIRM,
    SERVICE_PREFERENCES,
    SERVICE_SUBSCRIBE,
    service_url,
)


def page(lang: Lang, title: str, status: int = 200, **context: Any) -> Response:
    """A page of the service (Service.render), its link to the other language on GET pages."""
    svc = service()
    base = svc.settings.site.subscriptions_url or request.host_url
    other = request.base_url + "?lang=" if request.method == "GET" else None
    html = svc.render(lang, title, base, other, **context)
    return Response(html, status, content_type="text/html; charset=utf-8")


def message(lang: Lang, status: int, key: str, **values: str) -> Response:
    """A page that says one thing: SERVICE_TEXT[key], titled by SERVICE_TEXT[key_title]."""
    text = SERVICE_TEXT[lang]
    paragraph = text[key].format(**values) if values else text[key]
    return page(lang, text[f"{key}_title"], status, paragraphs=[paragraph])


def service() -> Service:
    found: Service = current_app.extensions["feeds"]
    return found


def page_lang(choice: str | None = None) -> Lang:
    """The language to answer in: asked for (?lang=, the form), else the browser's."""
    for value in (choice, request.args.get("lang")):
        if value in LANGS:
            return value
    best = request.accept_languages.best_match(LANGS)
    return best if best in LANGS else "ko"


def reader_lang(subscriber: Subscriber) -> Lang:
    return page_lang(subscriber.lang if subscriber.lang in LANGS else None)


class BadForm(Exception):
    """A form body that is not UTF-8 url-encoded text."""


def form() -> dict[str, str]:
    """The posted form, strictly: url-encoded bodies must be UTF-8 (werkzeug would replace
    what is not); multipart ones as werkzeug reads them."""
    if request.mimetype == "multipart/form-data":
        return {key: value for key, value in request.form.items()}
    found = parse_form(request.get_data(cache=True))
    if found is None:
        raise BadForm
    return found


def client_ip() -> str:
    return request.remote_addr or "-"


def base() -> str:
    return service().settings.site.subscriptions_url or request.host_url


blueprint = Blueprint("subscriptions", __name__)


@blueprint.get("/")
def sign_up_page() -> Response:
    return sign_up_form(page_lang())


def sign_up_form(lang: Lang, status: int = 200, error: str = "", email: str = "") -> Response:
    svc, text = service(), SERVICE_TEXT[lang]
    title = text["sign_up_title"].format(title=clean_text(svc.settings.site.title[lang]))
    signup = {
        "action": service_url(base(), SERVICE_SUBSCRIBE),
        "lang": lang,
        "chosen": lang,
        "email": email,
        "text": text,
    }
    return page(
        lang,
        title,
        status,
        template="signup",
        intro=text["sign_up_intro"],
        error=error,
        signup=signup,
    )


@blueprint.post("/subscribe")
def subscribe() -> Response:
    svc = service()
    try:
        fields = form()
    except BadForm:
        return bad(page_lang(), "bad_encoding")
    lang = page_lang(fields.get("page_lang"))
    text = SERVICE_TEXT[lang]
    if fields.get("website"):  # the honeypot: only robots fill it in; they learn nothing
        return checked(lang)
    email = fields.get("email", "").strip()
    address = parse_address(email) if email and len(email) <= 254 else "it is empty or too long"
    if isinstance(address, str):
        error = text["bad_email"].format(reason=address)
        return sign_up_form(lang, 400, error, email[:254])
    chosen = parse_lang(fields.get("lang", ""))
    if chosen is None:
        return sign_up_form(lang, 400, text["bad_lang"], email)
    people = svc.subscribers()
    if people.ip_over_limit(client_ip(), svc.limits):
        return message(lang, 429, "too_many")
    signed_up = people.sign_up(address, chosen, client_ip(), svc.limits)
    if signed_up is not None:
        subscriber, nonce = signed_up
        token = svc.tokens.confirmation(subscriber.id, nonce)
        url = service_url(base(), SERVICE_CONFIRM, token)
        if not svc.mailer.send(address, chosen, url):
            return message(lang, 503, "unavailable")
    return checked(lang)


def checked(lang: Lang) -> Response:
    days = str(service().settings.service.confirm_days)
    return message(lang, 200, "check_inbox", days=days)


def bad(lang: Lang, key: str, status: int = 400) -> Response:
    text = SERVICE_TEXT[lang]
    return page(lang, text["bad_request_title"], status, paragraphs=[text[key]])


def _confirmation(token: str) -> tuple[Subscriber, str] | Response:
    svc = service()
    try:
        subscriber_id, nonce = svc.tokens.read_confirmation(token)
    except ExpiredToken:
        return message(page_lang(), 410, "expired")
    except BadToken:
        return message(page_lang(), 404, "not_found")
    subscriber = svc.subscribers().by_id(subscriber_id)
    if subscriber is None:
        return message(page_lang(), 404, "not_found")
    return subscriber, nonce


@blueprint.route("/confirm/<token>", methods=["GET", "POST"])
def confirm(token: str) -> Response:
    svc = service()
    found = _confirmation(token)
    if isinstance(found, Response):
        return found
    subscriber, nonce = found
    lang = reader_lang(subscriber)
    text, site_title = SERVICE_TEXT[lang], clean_text(svc.settings.site.title[lang])
    if request.method == "GET":
        if subscriber.status == "confirmed":
            return page(lang, text["confirmed_title"], paragraphs=[text["already_confirmed"]])
        intro = text["confirm_intro"].format(
            address=subscriber.address, title=site_title, langs=svc.names(lang, subscriber.lang)
        )
        action = service_url(base(), SERVICE_CONFIRM, token)
        return page(
            lang,
            text["confirm_title"],
            template="confirm",
            intro=intro,
            action=action,
            form_token=svc.tokens.form(request.path),
        )
    try:
        fields = form()
    except BadForm:
        return bad(lang, "bad_encoding")
    if not svc.tokens.form_is_valid(fields.get("form_token", ""), request.path):
        return bad(lang, "bad_form")
    outcome = svc.subscribers().confirm(subscriber.id, nonce, client_ip())
    if outcome == "stale":
        return message(lang, 410, "expired")
    said = text["confirmed"].format(title=site_title)
    if outcome == "already":
        said = text["already_confirmed"]
    return page(lang, text["confirmed_title"], paragraphs=[said])


@blueprint.route(f"/{SERVICE_PREFERENCES}/<token>", methods=["GET", "POST"])
def preferences(token: str) -> Response:
    svc = service()
    try:
        subscriber = svc.subscribers().by_id(svc.tokens.read_preferences(token))
    except BadToken:
        subscriber = None
    if subscriber is None:  # forged, or forgotten
        return message(page_lang(), 404, "not_found")
    lang = reader_lang(subscriber)
    if request.method == "GET":
        return preferences_page(subscriber, lang, token)
    if request.get_data(cache=True) == ONE_CLICK.encode():  # RFC 8058: no cookie, no form
        return unsubscribed(subscriber, lang, "one-click")
    try:
        fields = form()
    except BadForm:
        return bad(lang, "bad_encoding")
    if fields.get("List-Unsubscribe") == "One-Click":
        return unsubscribed(subscriber, lang, "one-click")
    if not svc.tokens.form_is_valid(fields.get("form_token", ""), request.path):
        return bad(lang, "bad_body" if "form_token" not in fields else "bad_form")
    action = fields.get("action")
    if action == "unsubscribe":
        return unsubscribed(subscriber, lang, "preferences page")
    chosen = parse_lang(fields.get("lang", ""))
    if action != "lang" or chosen is None:
        return bad(lang, "bad_lang")
    svc.subscribers().set_lang(subscriber.id, chosen)
    changed = svc.subscribers().by_id(subscriber.id) or subscriber
    return preferences_page(changed, reader_lang(changed), token, SERVICE_TEXT[lang]["saved"])


def preferences_page(subscriber: Subscriber, lang: Lang, token: str, notice: str = "") -> Response:
    svc, text = service(), SERVICE_TEXT[lang]
    site_title = clean_text(svc.settings.site.title[lang])
    if subscriber.status not in ("confirmed", "listed", "pending"):
        link = {
            "url": service_url(base(), "") + f"?lang={lang}",
            "label": text["subscribe_again"],
        }
        return page(lang, text["preferences_title"], paragraphs=[text["not_subscribed"]], link=link)
    intro = text["preferences_intro"].format(address=subscriber.address, title=site_title)
    return page(
        lang,
        text["preferences_title"],
        template="preferences",
        intro=intro,
        notice=notice,
        chosen=subscriber.lang,
        action=service_url(base(), SERVICE_PREFERENCES, token),
        form_token=svc.tokens.form(request.path),
    )


def unsubscribed(subscriber: Subscriber, lang: Lang, how: str) -> Response:
    svc, text = service(), SERVICE_TEXT[lang]
    svc.subscribers().leave(subscriber.id, "unsubscribed", how)  # again: nothing changes
    site_title = clean_text(svc.settings.site.title[lang])
    paragraph = text["unsubscribed"].format(title=site_title)
    return page(lang, text["unsubscribed_title"], paragraphs=[paragraph])


@blueprint.get("/style.css")
def style() -> Response:
    css = service().env.get_template("_style.css").render()
    return Response(css, content_type="text/css; charset=utf-8")


_ERRORS = {404: "not_found", 405: "method", 413: "too_large", 429: "too_many"}


def http_error(error: HTTPException) -> Response:
    lang = page_lang()
    key = _ERRORS.get(error.code or 500)
    if key is None:
        return bad(lang, "bad_form", error.code or 400)
    return message(lang, error.code or 400, key)


_LAST_RESORT = "<!doctype html><title>500</title><p>Something went wrong. Please try again later."


def server_error(error: Exception) -> Response:
    current_app.logger.error("unexpected error: %s", error)
    try:
        return message(page_lang(), 500, "error")
    except Exception:  # the page of errors is itself broken (an edited template): say so plainly
        return Response(_LAST_RESORT, 500, content_type="text/html; charset=utf-8")


def secure(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def create_app(settings: Settings | None = None, db: Path | None = None) -> Flask:
    """The subscription service (a WSGI app). Settings, when not given, come as for every
    feeds command: ./pyproject.toml, then FEEDS_* variables (FEEDS_SECRET_KEY, SMTP ones)."""
    if settings is None:
        settings = load_settings()[0]
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_FORM_BYTES
    app.config["MAX_FORM_MEMORY_SIZE"] = MAX_FORM_BYTES
    app.extensions["feeds"] = Service(settings, db or Path(settings.mail.subscribers_db))
    app.register_blueprint(blueprint)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(jinja2.TemplateError, server_error)
    app.register_error_handler(Exception, server_error)
    app.after_request(secure)
    if settings.service.trusted_proxies:
        from werkzeug.middleware.proxy_fix import ProxyFix

        n = settings.service.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]
    return app


def serve(
    settings: Settings, db: Path, host: str, port: int, threads: int, say: Callable[[str], None]
) -> None:
    """`feeds subscribers serve`: the app under waitress until interrupted."""
    import waitress  # type: ignore[import-untyped]

    app = create_app(settings, db)
    try:
        server = waitress.create_server(app, host=host, port=port, threads=threads)
    except OSError as exc:
        raise FeedsError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    base = settings.site.subscriptions_url or f"http://{host}:{port}/"
    say(f"Serving subscriptions on http://{host}:{port}/ (public: {base}; database {db})")
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
