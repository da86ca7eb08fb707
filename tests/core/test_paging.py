"""The lists' cursors: sealed with AES-SIV under a key derived from SECRET_KEY, deterministic, and
opened only for the list that gave them; anything else is a `cursor` error."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from pulse_site.errors import ValidationError
from pulse_site.paging import MAX_CURSOR, NOT_A_CURSOR, cursor_open, cursor_seal

SCOPE = "schedules:7"


def refusal(scope: str, cursor: str) -> dict[str, list[str]] | None:
    with pytest.raises(ValidationError) as refused:
        cursor_open(scope, cursor)
    return refused.value.fields


def raw(cursor: str) -> bytes:
    return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))


def test_a_cursor_opens_to_the_key_it_sealed_and_the_same_place_gives_the_same_cursor():
    key = ["Nightly report ü", 1234567]
    cursor = cursor_seal(SCOPE, key)
    assert cursor_open(SCOPE, cursor) == key
    assert cursor_seal(SCOPE, key) == cursor
    assert cursor_seal(SCOPE, ["Nightly report ü", 1234568]) != cursor


def test_a_cursor_is_url_safe_and_does_not_show_its_key():
    cursor = cursor_seal(SCOPE, [9876543210])
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert b"9876543210" not in raw(cursor) and "9876543210" not in cursor


def test_a_schedules_longest_name_fits_in_a_cursor():
    assert len(cursor_seal(SCOPE, ["ü" * 100, 2**63 - 1])) <= MAX_CURSOR


def test_a_cursor_is_aes_siv_under_an_hkdf_key_of_the_secret_key(settings):
    """A vetted construction anyone can open with the secret: AES-SIV (RFC 5297), the list as its
    associated data, its key HKDF-SHA256 of SECRET_KEY (RFC 5869)."""
    settings.SECRET_KEY = "a test secret key of fifty characters or so, here!!"
    key = HKDF(algorithm=hashes.SHA256(), length=64, salt=b"pulse.paging.cursor",
               info=b"AES-SIV-512 key of the lists' cursors").derive(settings.SECRET_KEY.encode())
    assert AESSIV(key).decrypt(raw(cursor_seal(SCOPE, [42])), [SCOPE.encode()]) == b"[42]"


@pytest.mark.parametrize("other", ["schedules:8", "jobs:7", "schedules:7:runs", ""])
def test_another_lists_or_another_teams_cursor_is_refused(other):
    assert refusal(other, cursor_seal(SCOPE, [5])) == {"cursor": [NOT_A_CURSOR]}


def test_a_cursor_altered_anywhere_is_refused():
    cursor = cursor_seal(SCOPE, ["a", 5])
    sealed = raw(cursor)
    for at in range(len(sealed)):
        altered = sealed[:at] + bytes([sealed[at] ^ 1]) + sealed[at + 1:]
        assert refusal(SCOPE, base64.urlsafe_b64encode(altered).decode().rstrip("=")) == {"cursor": [NOT_A_CURSOR]}
    assert refusal(SCOPE, cursor[:-2]) == {"cursor": [NOT_A_CURSOR]}


@pytest.mark.parametrize("change", [
    lambda c: c[:4] + "." + c[4:], lambda c: c + "==", lambda c: c + " ", lambda c: c.replace("-", "+").replace("_", "/"),
], ids=["a dot added", "padding added", "a space added", "standard base64"])
def test_a_cursor_written_otherwise_than_sealed_is_refused(change):
    cursor = next(c for c in (cursor_seal(SCOPE, [n]) for n in range(1000)) if "-" in c and len(c) % 4)
    assert refusal(SCOPE, change(cursor)) == {"cursor": [NOT_A_CURSOR]}


@pytest.mark.parametrize("made_up", [
    "", "abc", "JB_01J0000000000000000000000", "not base64!", "é", "=" * 8, "A" * 24, "A" * (MAX_CURSOR + 4),
])
def test_anything_not_sealed_here_is_refused(made_up):
    assert refusal(SCOPE, made_up) == {"cursor": [NOT_A_CURSOR]}


def test_a_cursor_longer_than_the_limit_is_refused_unread(monkeypatch):
    cursor = cursor_seal(SCOPE, ["x" * 40, 1])
    monkeypatch.setattr("pulse_site.paging.MAX_CURSOR", len(cursor) - 1)
    assert refusal(SCOPE, cursor) == {"cursor": [NOT_A_CURSOR]}


def test_a_cursor_of_another_secret_key_is_refused(settings):
    cursor = cursor_seal(SCOPE, [5])
    settings.SECRET_KEY = "another deployment's secret key, long enough to be real"
    assert refusal(SCOPE, cursor) == {"cursor": [NOT_A_CURSOR]}


def test_a_cursor_sealed_before_the_secret_key_rotated_opens_while_the_old_key_is_a_fallback(settings):
    old = settings.SECRET_KEY
    cursor = cursor_seal(SCOPE, [5])
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "the new secret key, long enough to be a real one", [old]
    assert cursor_open(SCOPE, cursor) == [5]
    assert cursor_seal(SCOPE, [5]) != cursor  # new cursors are sealed under the new key
    settings.SECRET_KEY_FALLBACKS = []
    assert refusal(SCOPE, cursor) == {"cursor": [NOT_A_CURSOR]}
