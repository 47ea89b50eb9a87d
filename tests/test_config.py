"""Settings: split by who uses them, every key from the dataclass fields, secrets kept out of sight."""

from __future__ import annotations

import dataclasses
import shutil

import pytest
from click.testing import CliRunner

from feeds.cli import main
from feeds.config import (
    KEYS,
    BuildSettings,
    MailSettings,
    Secret,
    ServiceSettings,
    SiteSettings,
    load_settings,
    make_settings,
)
from feeds.errors import ConfigError
from feeds.inputs import code_salt

from .conftest import SEEDS


def test_every_field_is_a_key_of_exactly_one_section():
    names = [
        f.name
        for s in (SiteSettings, BuildSettings, MailSettings, ServiceSettings)
        for f in dataclasses.fields(s)
    ]
    assert sorted(names) == sorted(KEYS) and len(names) == len(set(names))


@pytest.mark.parametrize("value", ["²", "-1", "1.5", "many", "", "٣"])
def test_a_malformed_number_is_an_error_naming_the_key(value):
    with pytest.raises(ConfigError) as raised:
        load_settings(None, {}, {"FEEDS_FEED_LIMIT": value})
    assert str(raised.value) == (
        f"environment: setting feed_limit: expected a whole number, 0 or more, found {value!r}"
    )


def test_each_setting_lands_in_its_section():
    settings, _ = load_settings(
        None,
        {},
        {
            "FEEDS_FEED_LIMIT": "7",
            "FEEDS_WORKERS": "3",
            "FEEDS_SMTP_HOST": "mail.example.org",
            "FEEDS_SMTP_PORT": "2525",
        },
    )
    assert settings.site.feed_limit == 7
    assert settings.build.workers == 3
    assert (settings.mail.smtp_host, settings.mail.smtp_port) == ("mail.example.org", 2525)


def test_secrets_come_only_from_the_environment_and_never_show(tmp_path):
    config = tmp_path / "site.toml"
    config.write_text('base_url = "https://a.example/"\nsmtp_password = "hunter2"\n')
    with pytest.raises(ConfigError) as raised:
        load_settings(config, {}, {})
    assert "secrets are read only from the environment (set FEEDS_SMTP_PASSWORD)" in str(
        raised.value
    )
    assert "hunter2" not in str(raised.value)

    env = {"FEEDS_SMTP_PASSWORD": "hunter2", "FEEDS_SECRET_KEY": "k3y"}
    settings, _ = load_settings(None, {}, env)
    assert settings.mail.smtp_password == Secret("hunter2")
    assert settings.mail.smtp_password.reveal() == "hunter2"
    for shown in (repr(settings), str(settings), repr(settings.mail)):
        assert "hunter2" not in shown and "k3y" not in shown


def test_only_site_settings_enter_render_keys():
    base = make_settings(base_url="https://a.example/")
    assert code_salt(base.site) == code_salt(
        make_settings(
            base_url="https://a.example/",
            smtp_host="mail.example.org",
            secret_key="rotated",
            workers=7,
            cache_dir="/elsewhere",
            templates_dir="/my/templates",
        ).site
    )
    assert code_salt(base.site) != code_salt(
        make_settings(base_url="https://a.example/", feed_limit=3).site
    )


def test_an_unknown_key_suggests_the_close_one(tmp_path):
    config = tmp_path / "site.toml"
    config.write_text("feed_limt = 3\n")
    with pytest.raises(ConfigError) as raised:
        load_settings(config, {}, {})
    assert str(raised.value).startswith(
        f"{config}: unknown setting 'feed_limt' (did you mean 'feed_limit'? known: base_url, "
    )


def test_bad_settings_name_the_key(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[tool.feeds]\nbase_url = "ftp://x"\nfeed_limt = 3\n')
    monkeypatch.setenv("FEEDS_FEED_LIMIT", "many")
    shutil.copytree(SEEDS, tmp_path / "seeds")
    result = CliRunner().invoke(main, ["build"])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "Error: pyproject.toml: setting base_url: expected an absolute http(s) URL, found 'ftp://x'",
        "Error: pyproject.toml: unknown setting 'feed_limt' (did you mean 'feed_limit'? known: "
        + ", ".join(name for name, key in KEYS.items() if key.kind != "secret")
        + ")",
        "Error: environment: setting feed_limit: expected a whole number, 0 or more, found 'many'",
    ]
    assert not (tmp_path / "dist").exists()


def test_environment_overrides_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "site.toml"
    config.write_text(
        'base_url = "https://a.example/"\nfeed_limit = 5\n[title]\nko = "가"\nen = "A"\n'
    )
    settings, warnings = load_settings(
        config, {"feed_limit": 7}, {"FEEDS_BASE_URL": "https://b.example/x", "FEEDS_TITLE_EN": "B"}
    )
    assert (settings.site.base_url, settings.site.feed_limit, dict(settings.site.title)) == (
        "https://b.example/x/",
        7,
        {"ko": "가", "en": "B"},
    )
    assert warnings == []
    _, warnings = load_settings(None, {}, {})
    assert next(w.message for w in warnings).startswith("no base_url is set")
