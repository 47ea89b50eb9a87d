"""The subscription service as a subscriber, a mail client, a mail scanner and an attacker meet
it: `feeds subscribers serve` (waitress) on 127.0.0.1, confirmation mail to a real SMTP server
(aiosmtpd), then `feeds send` from the database."""

from __future__ import annotations

import shutil
import sqlite3
import ssl
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from feeds.build import build
from feeds.cli import main

from .browser import Browser, needs_chromium
from .conftest import ARTIFACTS, SEEDS
from .sending import SECRET, env_for, site
from .smtp_server import Recorder, SMTPServer, free_port
from .subscription_service import Reply, Service, confirmation_link
from .tls_proxy import TLSProxy

pytestmark = pytest.mark.slow  # a web server and an SMTP server in their own processes

PORT = free_port()  # the service's port in every test here
TLS_PORT = free_port()
URL = f"https://127.0.0.1:{TLS_PORT}/"
"""Its public URL, as the built newsletters link to it: https, as RFC 8058 asks, in production
from a TLS-terminating proxy in front of the service. Requests here go to the service itself
(the path of the URL); the browser test puts a TLS proxy (tests.tls_proxy) on TLS_PORT."""
SECURITY = {
    "content-security-policy": "default-src 'none'",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("subscriptions")
    shutil.copytree(SEEDS, tmp / "seeds")
    build(tmp / "seeds", tmp / "dist", site(unsubscribe_url=None, subscriptions_url=URL))
    return tmp / "dist"


def service(tmp_path: Path, smtp: SMTPServer | None, **env: str) -> Service:
    made = Service(tmp_path, smtp, **env)
    made.port, made.url = PORT, f"http://127.0.0.1:{PORT}/"
    made.env["FEEDS_SUBSCRIPTIONS_URL"] = URL
    return made


def send(smtp: SMTPServer, svc: Service, dist: Path, digest: str):
    env = env_for(smtp, FEEDS_SUBSCRIPTIONS_URL=URL, FEEDS_BOUNCE_ADDRESS="bounces@example.org")
    env.pop("FEEDS_UNSUBSCRIBE_URL")
    args = ["send", digest, "--dist", str(dist), "--db", str(svc.db), "--yes"]
    result = CliRunner(env=env).invoke(main, args)
    assert "Traceback" not in result.output
    return result


def secure(reply: Reply) -> Reply:
    for name, start in SECURITY.items():
        assert reply.headers.get(name, "").startswith(start), (name, reply.headers)
    assert "Traceback" not in reply.body
    return reply


def test_sign_up_confirm_send_one_click_and_the_next_send_skips(tmp_path, dist):
    with SMTPServer(Recorder()) as smtp, service(tmp_path, smtp) as svc:
        answer = secure(svc.sign_up("Reader@Example.com", "both"))
        assert answer.status == 200 and "메일함을 확인해 주세요" in answer.text
        assert svc.status_of("reader@example.com") == "pending"
        (mail,) = smtp.recorder.messages
        assert mail.rcpt_tos == ("Reader@example.com",)
        assert mail.raw_header("Auto-Submitted") == b"Auto-Submitted: auto-generated"
        assert mail.raw_header("Content-Language") == b"Content-Language: ko, en"
        link = confirmation_link(mail)
        assert link.startswith(f"{URL}confirm/") and "reader" not in link.lower()

        shown = secure(svc.get(link))  # what a mail scanner does: nothing
        assert shown.status == 200 and "구독 확인" in shown.text
        assert svc.get(link).status == 200
        assert svc.status_of("reader@example.com") == "pending"
        confirmed = secure(svc.confirm(link))
        assert confirmed.status == 200 and svc.status_of("reader@example.com") == "confirmed"
        again = svc.get(link)
        assert again.status == 200 and "이미 확인된 구독" in again.text

        smtp.recorder.messages.clear()
        first = send(smtp, svc, dist, "2024-11-04-1")
        assert first.exit_code == 0, first.output
        assert sorted(smtp.recorder.recipients()) == ["Reader@example.com"] * 2  # ko and en
        newsletter = smtp.recorder.messages[0]
        header = newsletter.raw_header("List-Unsubscribe").decode("ascii")
        assert "=?" not in header
        https = header.split("<")[-1].rstrip(">")
        assert https.startswith(f"{URL}p/")
        assert newsletter.raw_header("List-Unsubscribe-Post") == (
            b"List-Unsubscribe-Post: List-Unsubscribe=One-Click"
        )
        assert newsletter.mail_from.startswith("bounces+") and newsletter.mail_from.endswith(
            "@example.org"
        )
        page = secure(svc.get(https))
        assert page.status == 200 and "Reader@example.com" in page.text

        # RFC 8058: a POST with this body, no cookie, no form token; twice is the same.
        for _ in range(2):
            left = secure(
                svc.post(
                    https,
                    b"List-Unsubscribe=One-Click",
                    **{"Content-Type": "application/x-www-form-urlencoded"},
                )
            )
            assert left.status == 200
        assert svc.status_of("reader@example.com") == "unsubscribed"
        events = [e for (e,) in svc.rows("SELECT event FROM consent ORDER BY rowid")]
        assert events == ["signed up", "confirmed", "unsubscribed"]

        smtp.recorder.messages.clear()
        second = send(smtp, svc, dist, "2024-11-07")
        assert second.exit_code == 0, second.output
        assert smtp.recorder.messages == []


def test_sign_up_answers_the_same_whoever_the_address_is(tmp_path):
    with SMTPServer(Recorder()) as smtp, service(tmp_path, smtp) as svc:
        new = svc.sign_up("new@example.com", "en", page_lang="en")
        svc.confirm(confirmation_link(smtp.recorder.messages[-1]))
        known = svc.sign_up("new@example.com", "en", page_lang="en")
        robot = svc.sign_up("victim@example.com", "en", page_lang="en", website="http://spam")
        assert new.status == known.status == robot.status == 200
        assert new.body == known.body == robot.body
        assert len(smtp.recorder.messages) == 1  # confirmed people and robots get no mail
        assert svc.status_of("victim@example.com") is None


def test_one_address_gets_a_few_confirmation_mails_a_day_and_one_ip_a_few_an_hour(tmp_path):
    with SMTPServer(Recorder()) as smtp, service(tmp_path, smtp, FEEDS_MAILS_PER_IP="6") as svc:
        answers = [svc.sign_up("victim@example.com", "ko") for _ in range(5)]
        assert {a.status for a in answers} == {200}
        assert len({a.body for a in answers}) == 1
        assert len(smtp.recorder.messages) == 3  # mails_per_address
        assert svc.sign_up("other@example.com", "ko").status == 200
        refused = secure(svc.sign_up("third@example.com", "ko"))
        assert refused.status == 429
        assert len(smtp.recorder.messages) == 4
        assert svc.status_of("third@example.com") is None
        # only the last mail's link confirms: each sign-up replaced the one before
        links = [confirmation_link(m) for m in smtp.recorder.messages[:3]]
        assert svc.confirm(links[0]).status == 410
        assert svc.confirm(links[2]).status == 200


def test_a_mail_that_cannot_go_out_says_try_later_and_a_retry_works(tmp_path):
    with service(tmp_path, None) as svc:  # port 9: refused
        failed = secure(svc.sign_up("reader@example.com", "en", page_lang="en"))
        assert failed.status == 503 and "try again" in failed.text.lower()
        _out, err = svc.stop()
        assert b"Traceback" not in err and b"reader@example.com" not in err
    with SMTPServer(Recorder()) as smtp, service(tmp_path, smtp) as svc:
        assert svc.sign_up("reader@example.com", "en").status == 200
        assert svc.confirm(confirmation_link(smtp.recorder.messages[0])).status == 200


def expired_link(svc: Service, link: str) -> str:
    """The same confirmation, signed eight days ago."""
    from feeds.tokens import Tokens

    subscriber, nonce = Tokens(SECRET).read_confirmation(link.rsplit("/", 1)[1])

    class EightDaysAgo(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 8 * 86400

    old = URLSafeTimedSerializer(SECRET, salt="feeds.confirm", signer=EightDaysAgo)
    return f"{URL}confirm/{old.dumps([subscriber, nonce])}"


def test_bad_requests_get_a_clear_page_and_change_nothing(tmp_path):
    with SMTPServer(Recorder()) as smtp, service(tmp_path, smtp) as svc:
        svc.sign_up("reader@example.com", "ko")
        link = confirmation_link(smtp.recorder.messages[0])
        token = link.rsplit("/", 1)[1]
        shown = svc.get(link)
        form_token = shown.form_token()
        before = svc.rows("SELECT * FROM subscribers"), svc.rows("SELECT * FROM consent")
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        cases: list[tuple[str, str, bytes | dict[str, str] | None, dict[str, str], int]] = [
            ("POST", "/subscribe", {"email": "not-an-address", "lang": "ko"}, {}, 400),
            ("POST", "/subscribe", {"email": "a@b@example.com", "lang": "ko"}, {}, 400),
            ("POST", "/subscribe", {"email": "x" * 300 + "@example.com", "lang": "ko"}, {}, 400),
            ("POST", "/subscribe", {"email": "a@example.com", "lang": "fr"}, {}, 400),
            ("POST", "/subscribe", {"lang": "ko"}, {}, 400),
            ("POST", "/subscribe", b"email=a%FF%FE@example.com&lang=ko", form, 400),
            ("POST", "/subscribe", b"email=\xff\xfe@example.com&lang=ko", form, 400),
            ("POST", "/subscribe", b"email=" + b"a" * 100_000, form, 413),
            ("GET", "/subscribe", None, {}, 405),
            ("PUT", "/subscribe", b"", {}, 405),
            ("GET", "/confirm/forged-token", None, {}, 404),
            ("GET", f"/confirm/{token[:-2]}xx", None, {}, 404),
            ("POST", f"/confirm/{token}", {"form_token": "forged"}, {}, 400),
            ("POST", f"/confirm/{token}", {}, {}, 400),
            ("POST", link.replace(token, "forged"), {"form_token": form_token}, {}, 404),
            ("GET", expired_link(svc, link), None, {}, 410),
            ("POST", expired_link(svc, link), {"form_token": form_token}, {}, 410),
            ("GET", "/p/forged", None, {}, 404),
            ("POST", "/p/forged", b"List-Unsubscribe=One-Click", form, 404),
            ("GET", "/no/such/page", None, {}, 404),
        ]
        for method, path, body, headers, status in cases:
            reply = secure(svc.request(method, path, body, headers))
            assert reply.status == status, (method, path, body, reply.status, reply.text[:200])
            assert reply.headers["content-type"].startswith("text/html")
        assert (svc.rows("SELECT * FROM subscribers"), svc.rows("SELECT * FROM consent")) == before
        _, err = svc.stop()
        assert b"Traceback" not in err


def test_the_preferences_page_changes_language_with_a_form_token_and_unsubscribes(tmp_path, dist):
    with SMTPServer(Recorder()) as smtp, service(tmp_path, smtp) as svc:
        svc.sign_up("reader@example.com", "ko")
        svc.confirm(confirmation_link(smtp.recorder.messages[0]))
        smtp.recorder.messages.clear()
        assert send(smtp, svc, dist, "2024-11-04-1").exit_code == 0
        url = smtp.recorder.messages[0].raw_header("List-Unsubscribe").decode()
        url = url.split("<")[-1].rstrip(">")
        page = svc.get(url)
        assert page.status == 200 and 'action="lang"' not in page.body
        no_token = svc.post(url, {"action": "lang", "lang": "en"})
        assert no_token.status == 400 and svc.rows("SELECT lang FROM subscribers") == [("ko",)]
        other_page = svc.get("/").body  # a token made for another page is no good here
        assert 'name="form_token"' not in other_page
        changed = svc.post(url, {"action": "lang", "lang": "both", "form_token": page.form_token()})
        assert changed.status == 200 and svc.rows("SELECT lang FROM subscribers") == [("both",)]
        no_body = svc.post(url, b"", **{"Content-Type": "application/x-www-form-urlencoded"})
        assert no_body.status == 400 and svc.status_of("reader@example.com") == "confirmed"
        multipart = svc.post(
            url,
            b'--b\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
            b"One-Click\r\n--b--\r\n",
            **{"Content-Type": "multipart/form-data; boundary=b"},
        )
        assert multipart.status == 200 and svc.status_of("reader@example.com") == "unsubscribed"
        gone = svc.get(url)
        assert gone.status == 200 and "/?lang=" in gone.body  # a way back: sign up again
        # coming back takes a new confirmation
        svc.sign_up("reader@example.com", "ko")
        assert svc.status_of("reader@example.com") == "pending"
        svc.confirm(confirmation_link(smtp.recorder.messages[-1]))
        assert svc.status_of("reader@example.com") == "confirmed"


def test_a_hundred_sign_ups_and_one_clicks_at_once_lose_and_double_nothing(tmp_path, dist):
    listed = tmp_path / "list.csv"
    listed.write_text("email,lang\n" + "".join(f"old{n}@example.com,ko\n" for n in range(100)))
    env = {"FEEDS_BASE_URL": "https://example.org/", "FEEDS_SECRET_KEY": SECRET}
    db = str(tmp_path / "subscribers.sqlite")
    imported = CliRunner(env=env).invoke(
        main, ["subscribers", "import", "--confirmed", str(listed), "--db", db]
    )
    assert imported.exit_code == 0, imported.output
    from feeds.tokens import Tokens

    with sqlite3.connect(db) as conn:
        ids = [i for (i,) in conn.execute("SELECT id FROM subscribers")]
    tokens = [Tokens(SECRET).preferences(i) for i in ids]
    extra = {"FEEDS_MAILS_PER_IP": "1000"}
    with SMTPServer(Recorder()) as smtp, service(tmp_path, smtp, **extra) as svc:
        form = {"Content-Type": "application/x-www-form-urlencoded"}

        def one(n: int) -> int:
            if n % 2:
                return svc.sign_up(f"new{n // 2}@example.com", "en").status
            return svc.post(f"/p/{tokens[n // 2]}", b"List-Unsubscribe=One-Click", **form).status

        with ThreadPoolExecutor(50) as pool:
            statuses = list(pool.map(one, range(200)))
        assert statuses == [200] * 200
        counts = dict(svc.rows("SELECT status, count(*) FROM subscribers GROUP BY status"))
        assert counts == {"pending": 100, "unsubscribed": 100}
        events = svc.rows(
            "SELECT event, count(*), count(DISTINCT subscriber) FROM consent GROUP BY 1"
        )
        assert sorted(events) == [
            ("imported", 100, 100),
            ("signed up", 100, 100),
            ("unsubscribed", 100, 100),
        ]
        assert len(smtp.recorder.messages) == 100
        assert len({m.rcpt_tos for m in smtp.recorder.messages}) == 100


def test_a_killed_service_keeps_every_confirmed_subscriber(tmp_path):
    with SMTPServer(Recorder()) as smtp:
        svc = service(tmp_path, smtp).start()
        for n in range(5):
            svc.sign_up(f"reader{n}@example.com", "ko")
        for mail in smtp.recorder.messages:
            assert svc.confirm(confirmation_link(mail)).status == 200
        svc.kill()  # right after the last answer: no checkpoint, no clean close
        assert svc.rows("PRAGMA integrity_check") == [("ok",)]
        assert svc.rows("SELECT count(*) FROM subscribers WHERE status='confirmed'") == [(5,)]
        with service(tmp_path, smtp) as again:
            assert again.get("/").status == 200
            assert again.sign_up("reader0@example.com", "ko").status == 200
        assert len(smtp.recorder.messages) == 5  # confirmed already: no sixth mail


@needs_chromium
def test_in_a_browser_from_a_digest_page_to_the_inbox_and_out_again(tmp_path, dist):
    """The loop a subscriber goes through, in headless Chromium: the sign-up form of a built
    digest page, the confirmation mail, the Confirm button, a newsletter, a one-click
    unsubscribe, and no newsletter after it; screenshots of every page of the service at 375
    and 1024 px in both languages (tests/artifacts/service-*.png)."""
    with (
        SMTPServer(Recorder()) as smtp,
        service(tmp_path, smtp) as svc,
        TLSProxy(tmp_path, TLS_PORT, PORT),
        static_site(dist) as site_url,
        Browser(1024, flags=("--ignore-certificate-errors",)) as browser,
    ):

        def shoot(name: str, lang: str) -> None:
            for width in (375, 1024):
                browser.resize(width)
                wide = browser.js("document.documentElement.scrollWidth")
                assert wide == width, f"{name} at {width} px scrolls sideways ({wide} px)"
                browser.screenshot(ARTIFACTS / f"service-{name}-{lang}-{width}.png")
            browser.resize(1024)

        for lang, address in (("ko", "browser.ko@example.com"), ("en", "browser.en@example.com")):
            browser.open(f"{URL}?lang={lang}")
            shoot("signup", lang)
            browser.open(f"{site_url}{lang}/2024-11-07/")
            browser.js(
                f"document.querySelector('form.signup input[name=email]').value = '{address}'"
            )
            browser.js("document.querySelector('form.signup input[value=both]').click()")
            browser.submit("document.querySelector('form.signup button').click()")
            assert browser.js("location.href") == f"{URL}subscribe"
            said = {"ko": "메일함을 확인해 주세요", "en": "Check your inbox"}[lang]
            assert said in str(browser.js("document.body.innerText"))
            shoot("check-inbox", lang)

            link = confirmation_link(smtp.recorder.messages[-1])
            browser.open(link)
            shoot("confirm", lang)
            assert svc.status_of(address) == "pending"
            browser.submit("document.querySelector('form button').click()")
            assert svc.status_of(address) == "confirmed"
            shoot("confirmed", lang)

        smtp.recorder.messages.clear()
        assert send(smtp, svc, dist, "2024-11-04-1").exit_code == 0
        got = sorted(smtp.recorder.recipients())
        assert got == ["browser.en@example.com"] * 2 + ["browser.ko@example.com"] * 2
        for lang, address in (("ko", "browser.ko@example.com"), ("en", "browser.en@example.com")):
            mail = next(m for m in smtp.recorder.messages if m.rcpt_tos == (address,))
            url = mail.raw_header("List-Unsubscribe").decode().split("<")[-1].rstrip(">")
            browser.open(f"{url}?lang={lang}")
            shoot("preferences", lang)
            # What Gmail does: POST the one-click body to the https URI, no cookie (here through
            # the TLS proxy, whose certificate is self-signed).
            request = urllib.request.Request(
                url,
                data=b"List-Unsubscribe=One-Click",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            unverified = ssl._create_unverified_context()
            with urllib.request.urlopen(request, context=unverified, timeout=30) as reply:
                assert reply.status == 200
            assert svc.status_of(address) == "unsubscribed"
            browser.open(f"{url}?lang={lang}")
            shoot("unsubscribed", lang)

        smtp.recorder.messages.clear()
        assert send(smtp, svc, dist, "2024-11-07").exit_code == 0
        assert smtp.recorder.messages == []


@contextmanager
def static_site(dist: Path) -> Iterator[str]:
    """dist/ as any static host serves it."""
    handler = partial(SimpleHTTPRequestHandler, directory=str(dist))
    handler.log_message = lambda *a: None  # type: ignore[method-assign]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
