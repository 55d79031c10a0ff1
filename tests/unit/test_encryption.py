"""Encryption at rest without a database: the setting, the key ring, the envelopes and
their binding to a place (assessment id and field)."""

from __future__ import annotations

import base64
import json
import os

import pytest

from assessment_store import at_rest
from assessment_store.config import load_settings
from assessment_store.db.transitions import Step
from assessment_store.encryption import SETTING, KeyRing, parse_keys
from assessment_store.errors import ConfigurationError, DecryptionError
from assessment_store.states import AssessmentEvent, AssessmentState

KEY_A = base64.b64encode(bytes(range(32))).decode()
KEY_B = base64.b64encode(bytes(range(100, 116))).decode()
KEY_C = base64.urlsafe_b64encode(b"\xfb\xff" * 12).decode().rstrip("=")  # 24 bytes, '-_'


def ring(setting: str = f"k1:{KEY_A}") -> KeyRing:
    return KeyRing.from_setting(setting)


# -- the setting -----------------------------------------------------------------------


def test_the_setting_lists_keys_in_order_first_encrypts() -> None:
    keys = ring(f"new:{KEY_B}, old_1:{KEY_A},x-3:{KEY_C}")
    assert keys.ids == ("new", "old_1", "x-3")
    assert keys.current_id == "new"
    assert [len(key) for _, key in parse_keys(f"a:{KEY_B},b:{KEY_C},c:{KEY_A}")] == [16, 24, 32]


SECRET = base64.b64encode(b"hunter2-hunter2-hunter2-hunter2!").decode()  # 32 bytes


@pytest.mark.parametrize(
    ("setting", "problem"),
    [
        ("", "at least one id:base64key"),
        (" , ", "at least one id:base64key"),
        (SECRET, "entry 1 is not id:base64key"),
        (f"k1:{KEY_A},{SECRET}", "entry 2 is not id:base64key"),
        (f"bad id:{SECRET}", "entry 1: the key id must be"),
        (f"{SECRET[:20]}.x:{SECRET}", "entry 1: the key id must be"),
        (f"k1:{SECRET}!!", "entry 1: the key is not base64"),
        (f"k1:{base64.b64encode(b'hunter2-short').decode()}", "13 bytes, not 16, 24 or 32"),
        (f"k1:{SECRET},k1:{KEY_A}", "entries 1 and 2 have the same key id"),
    ],
)
def test_a_bad_setting_is_refused_naming_it_without_echoing_any_key(
    setting: str, problem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigurationError) as refused:
        KeyRing.from_setting(setting)
    assert SETTING in str(refused.value) and problem in str(refused.value)
    assert SECRET not in str(refused.value) and "hunter2" not in str(refused.value)
    monkeypatch.setenv(SETTING, setting)
    with pytest.raises(ConfigurationError) as at_load:
        load_settings()
    message = str(at_load.value)
    assert SETTING in message and problem in message
    assert SECRET not in message and "hunter2" not in message and SECRET[:20] not in message


def test_settings_never_show_the_keys() -> None:
    settings = load_settings(encryption_keys=f"k1:{SECRET}")
    assert SECRET not in repr(settings) and SECRET not in str(settings)
    assert SECRET not in repr(ring(f"k1:{SECRET}"))
    assert load_settings().encryption_keys is None  # off by default


# -- envelopes -------------------------------------------------------------------------


def test_values_round_trip_with_a_random_nonce_and_the_key_id() -> None:
    keys = ring()
    result = {"findings": [{"id": "CVE-1", "score": 9.8}], "text": "naïve ✓"}
    sealed = at_rest.seal_json(keys, "a-1", at_rest.RESULT, result)
    assert set(sealed) == {"$enc", "kid", "data"} and sealed["kid"] == "k1"
    assert "CVE-1" not in json.dumps(sealed)
    assert at_rest.open_json(keys, "a-1", at_rest.RESULT, sealed) == result
    again = at_rest.seal_json(keys, "a-1", at_rest.RESULT, result)
    assert again["data"] != sealed["data"]  # a fresh nonce every time
    text = at_rest.seal_text(keys, "a-1", at_rest.ERROR, "ValueError: secret path /etc/x")
    assert text.startswith("enc:v1:k1:") and "secret" not in text
    assert at_rest.open_text(keys, "a-1", at_rest.ERROR, text) == "ValueError: secret path /etc/x"


def test_old_keys_still_decrypt() -> None:
    sealed = at_rest.seal_text(ring(f"k1:{KEY_A}"), "a-1", at_rest.ERROR, "boom")
    rotated = ring(f"k2:{KEY_B},k1:{KEY_A}")
    assert at_rest.open_text(rotated, "a-1", at_rest.ERROR, sealed) == "boom"
    assert at_rest.seal_text(rotated, "a-1", at_rest.ERROR, "boom").startswith("enc:v1:k2:")


def test_plaintext_reads_as_it_is_with_or_without_keys() -> None:
    for keys in (ring(), None):
        assert at_rest.open_json(keys, "a", at_rest.RESULT, {"ok": True}) == {"ok": True}
        assert at_rest.open_json(keys, "a", at_rest.RESULT, {"$enc": "other"}) == {"$enc": "other"}
        assert at_rest.open_text(keys, "a", at_rest.ERROR, "plain error") == "plain error"
        assert at_rest.open_text(keys, "a", at_rest.ERROR, None) is None
    row: dict[str, object] = {"assessment_id": "a", "request_data": {"options": {}}}
    row |= {"result_data": None, "error_message": None}
    assert at_rest.open_row(None, row) is row


@pytest.mark.parametrize(
    ("other_id", "other_field"),
    [("a-2", at_rest.RESULT), ("a-1", at_rest.OPTIONS), ("a-1", at_rest.ERROR)],
)
def test_a_value_copied_to_another_row_or_field_does_not_decrypt(
    other_id: str, other_field: str
) -> None:
    keys = ring()
    sealed = at_rest.seal_json(keys, "a-1", at_rest.RESULT, {"v": 1})
    with pytest.raises(DecryptionError, match="altered or copied"):
        at_rest.open_json(keys, other_id, other_field, sealed)


def test_a_tampered_or_relabelled_value_does_not_decrypt() -> None:
    keys = ring(f"k1:{KEY_A},k2:{KEY_B}")
    sealed = at_rest.seal_text(keys, "a-1", at_rest.ERROR, "boom")
    blob = bytearray(base64.b64decode(sealed.split(":")[3]))
    blob[-1] ^= 1
    tampered = "enc:v1:k1:" + base64.b64encode(bytes(blob)).decode()
    with pytest.raises(DecryptionError, match="does not decrypt"):
        at_rest.open_text(keys, "a-1", at_rest.ERROR, tampered)
    relabelled = sealed.replace("enc:v1:k1:", "enc:v1:k2:")
    with pytest.raises(DecryptionError, match="does not decrypt"):
        at_rest.open_text(keys, "a-1", at_rest.ERROR, relabelled)
    for broken in ("enc:v1:k1:", "enc:v1:k1:!!!", "enc:v1:k1:QUJD", "enc:v1:bad id:QUJD"):
        with pytest.raises(DecryptionError, match="well-formed"):
            at_rest.open_text(keys, "a-1", at_rest.ERROR, broken)
    with pytest.raises(DecryptionError, match="well-formed"):
        at_rest.open_json(keys, "a-1", at_rest.RESULT, {"$enc": "v1", "kid": 7, "data": "x"})


def test_a_wrong_or_missing_key_fails_clearly_without_key_material() -> None:
    sealed = at_rest.seal_text(ring(f"k1:{KEY_A}"), "a-1", at_rest.ERROR, "boom")
    with pytest.raises(DecryptionError) as wrong:
        at_rest.open_text(ring(f"k1:{KEY_B}"), "a-1", at_rest.ERROR, sealed)
    with pytest.raises(DecryptionError) as missing:
        at_rest.open_text(ring(f"k2:{KEY_B}"), "a-1", at_rest.ERROR, sealed)
    with pytest.raises(DecryptionError) as off:
        at_rest.open_text(None, "a-1", at_rest.ERROR, sealed)
    assert "with key 'k1' does not decrypt" in str(wrong.value)
    assert "key 'k1', which ASSESSMENT_STORE_ENCRYPTION_KEYS does not hold" in str(missing.value)
    assert "'k1', but ASSESSMENT_STORE_ENCRYPTION_KEYS is not set" in str(off.value)
    for error in (wrong.value, missing.value, off.value):
        assert error.code == "DECRYPTION_FAILED"
        assert "assessment 'a-1' error_message" in str(error)
        assert KEY_A not in str(error) and KEY_B not in str(error)
        assert sealed.split(":")[3] not in str(error)


def test_only_the_options_of_a_request_are_sealed() -> None:
    keys = ring()
    request = {"id": "a-1", "assessmentType": "health", "serverName": "db:5432", "priority": 7}
    request["options"] = {"serverFilter": ["secret-host"]}
    sealed = at_rest.seal_request(keys, "a-1", request)
    assert {k: v for k, v in sealed.items() if k != "options"} == {
        k: v for k, v in request.items() if k != "options"
    }
    assert "secret-host" not in json.dumps(sealed)
    assert at_rest.open_request(keys, "a-1", sealed) == request


def test_a_failure_step_seals_its_error_and_its_reason_other_steps_only_their_values() -> None:
    keys = ring()
    fail = Step(
        "a-1", AssessmentState.PROCESSING, "w", "failed: boom", values={"error_message": "boom"}
    )
    sealed = at_rest.seal_step(keys, AssessmentEvent.FAIL, fail)
    assert "boom" not in sealed.reason and "boom" not in str(sealed.values["error_message"])
    assert at_rest.open_text(keys, "a-1", at_rest.REASON, sealed.reason) == "failed: boom"
    progress = Step("a-1", AssessmentState.PROCESSING, "w", "progress 5%", values={"progress": 5})
    assert at_rest.seal_step(keys, AssessmentEvent.PROGRESS, progress) == progress


def test_a_key_is_never_kept_as_an_attribute() -> None:
    key = os.urandom(32)
    keys = KeyRing([("k1", key)])
    assert all(key not in repr(value).encode() for value in vars(keys).values())
