"""Signed webhooks, the pure part: the signature against a known vector (computed with openssl), the backoff schedule,
which answers are retried, the URL rules, which subscriber wants what, the secrets during a rotation, and a
delivery's life."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from notifications.domain.errors import LeaseLost, NotFailed
from notifications.domain.webhooks import (
    DELIVERED,
    FAILED,
    PENDING,
    BadWebhookUrl,
    Webhook,
    WebhookDelivery,
    check_url,
    retry_delay,
    retryable,
    sign,
    signature_header,
    verify,
)

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
BODY = b'{"id":"1"}'
# printf '%s' '1767225600.{"id":"1"}' | openssl dgst -sha256 -hmac 'whsec_test-secret'
KNOWN = "6934d0e30b52b193e19d1d42ce950de01151bf238d9b2890e1a0b93b2d6d57b5"
KNOWN_OLD = "f111acae9bc638da407889909c83d3fbb2c1b357b55acca213814b11779262b5"  # the same under 'whsec_old-secret'


def test_signature_is_hex_hmac_sha256_of_timestamp_dot_body():
    assert sign("whsec_test-secret", 1767225600, BODY) == KNOWN
    assert signature_header(["whsec_test-secret"], 1767225600, BODY) == f"v1={KNOWN}"
    assert signature_header(["whsec_test-secret", "whsec_old-secret"], 1767225600, BODY) == f"v1={KNOWN},v1={KNOWN_OLD}"


def test_a_receiver_verifies_with_either_secret_during_a_rotation_and_not_with_a_wrong_one():
    header = signature_header(["whsec_test-secret", "whsec_old-secret"], 1767225600, BODY)
    assert verify(header, "whsec_test-secret", 1767225600, BODY)
    assert verify(header, "whsec_old-secret", 1767225600, BODY)
    assert not verify(header, "whsec_other", 1767225600, BODY)
    assert not verify(header, "whsec_test-secret", 1767225601, BODY)  # another timestamp
    assert not verify(header, "whsec_test-secret", 1767225600, BODY + b" ")  # another body


def test_backoff_doubles_from_the_base_up_to_the_cap_and_jitter_takes_at_most_half():
    schedule = [retry_delay(n, base=5, cap=3600, jitter=0).total_seconds() for n in range(1, 12)]
    assert schedule == [5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600]
    assert retry_delay(3, base=5, cap=3600, jitter=0.5) == timedelta(seconds=15)
    assert retry_delay(3, base=5, cap=3600, jitter=0.999).total_seconds() == pytest.approx(10.01)
    assert retry_delay(20, base=5, cap=3600, jitter=0.9999).total_seconds() >= 1800


@pytest.mark.parametrize(
    ("status", "again"),
    [(None, True), (500, True), (502, True), (503, True), (408, True), (429, True)]
    + [(400, False), (401, False), (404, False), (410, False), (301, False), (302, False)],
)
def test_which_answers_are_tried_again(status, again):
    assert retryable(status) is again


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.org/netvaerk",
        "https://hooks.example.org:8443/a/b?c=d",
        "https://[2a00:1450:4001:82b::200e]/hook",  # a public IPv6 address
    ],
)
def test_https_urls_are_taken_in_production(url):
    assert check_url(url, environment="production") == url


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("http://hooks.example.org/x", "https"),
        ("ftp://hooks.example.org/x", "https"),
        ("https://user:pw@hooks.example.org/x", "password"),
        ("https://user@hooks.example.org/x", "password"),
        ("https://hooks.example.org/x#frag", "fragment"),
        ("https:///x", "host"),
        ("https://hooks.example.org/" + "a" * 2048, "2048"),
        ("https://hooks.example.org/a b", "spaces"),
        ("https://hooks.example.org/a\r\nb", "control"),
        ("https://hooks.example.org:99999/x", "Not a URL"),
        ("https://169.254.169.254/latest/meta-data", "private"),
        ("https://10.0.0.5/x", "private"),
        ("https://127.0.0.1/x", "private"),
        ("https://[::1]/x", "private"),
        ("https://localhost/x", "loopback"),
        ("http://127.0.0.1:8080/x", "https"),  # production: no plain http at all
    ],
)
def test_urls_a_subscriber_may_not_have_in_production(url, rule):
    with pytest.raises(BadWebhookUrl, match=rule):
        check_url(url, environment="production")


def test_plain_http_only_to_loopback_and_only_in_development_and_test():
    for environment in ("development", "test"):
        assert check_url("http://127.0.0.1:8080/hook", environment=environment)
        assert check_url("http://localhost:8080/hook", environment=environment)
        assert check_url("http://[::1]:8080/hook", environment=environment)
        with pytest.raises(BadWebhookUrl, match="https"):
            check_url("http://hooks.example.org/hook", environment=environment)
        with pytest.raises(BadWebhookUrl, match="https"):
            check_url("http://10.0.0.5/hook", environment=environment)


def _webhook(**kw) -> Webhook:
    return Webhook(
        id=uuid.uuid4(), name="Intranet", url="https://hooks.example.org/x", secret="s1", created_at=NOW, **kw
    )


def test_a_subscriber_wants_its_kinds_and_its_organisations_members_only():
    org = uuid.uuid4()
    everything = _webhook()
    invitations = _webhook(kinds=("invitation",))
    of_org = _webhook(organisation_id=org)
    assert everything.wants("welcome", None) and everything.wants("invitation", org)
    assert invitations.wants("invitation", None) and not invitations.wants("welcome", None)
    assert of_org.wants("welcome", org) and not of_org.wants("welcome", uuid.uuid4())
    assert not of_org.wants("welcome", None)  # a member whose organisation we do not know


def test_a_rotation_signs_with_both_secrets_for_the_grace_period_then_with_the_new_one():
    rotated = _webhook().rotated("s2", NOW, timedelta(hours=24))
    assert rotated.secret == "s2" and rotated.previous_secret == "s1"
    assert rotated.signing_secrets(NOW + timedelta(hours=23)) == ("s2", "s1")
    assert rotated.signing_secrets(NOW + timedelta(hours=24)) == ("s2",)
    again = rotated.rotated("s3", NOW + timedelta(hours=1), timedelta(hours=24))
    assert again.signing_secrets(NOW + timedelta(hours=2)) == ("s3", "s2")  # s1 no longer signs


def _delivery() -> WebhookDelivery:
    return WebhookDelivery(
        id=uuid.uuid4(),
        webhook_id=uuid.uuid4(),
        event_id=str(uuid.uuid4()),
        event_type="dk.danskit.notification.sent.v1",
        member_id=uuid.uuid4(),
        body=BODY,
        created_at=NOW,
        next_attempt_at=NOW,
    )


def test_a_delivery_retried_after_5xx_then_delivered():
    d = _delivery()
    d.lease("a", NOW, NOW + timedelta(seconds=30))
    with pytest.raises(LeaseLost):
        d.lease("b", NOW, NOW + timedelta(seconds=30))  # two instances never post it at once
    d.attempt_failed("a", NOW, status=500, error="HTTP 500", max_attempts=5, delay=timedelta(seconds=5))
    assert (d.status, d.attempts, d.next_attempt_at, d.lease_owner) == (PENDING, 1, NOW + timedelta(seconds=5), None)
    with pytest.raises(LeaseLost):
        d.lease("a", NOW, NOW + timedelta(seconds=30))  # not due yet
    later = NOW + timedelta(seconds=5)
    d.lease("a", later, later + timedelta(seconds=30))
    d.delivered("a", later, 204)
    assert (d.status, d.attempts, d.last_status, d.last_error) == (DELIVERED, 2, 204, None)


def test_a_4xx_parks_at_once_and_the_attempts_running_out_park_too_then_an_operator_retries():
    d = _delivery()
    d.lease("a", NOW, NOW + timedelta(seconds=30))
    d.attempt_failed("a", NOW, status=400, error="HTTP 400", max_attempts=5, delay=timedelta(seconds=5))
    assert (d.status, d.attempts) == (FAILED, 1)
    d.retry(NOW)
    assert (d.status, d.attempts) == (PENDING, 0)
    for _ in range(3):
        d.lease("a", d.next_attempt_at, d.next_attempt_at + timedelta(seconds=30))
        d.attempt_failed("a", d.next_attempt_at, status=None, error="timeout", max_attempts=3, delay=timedelta(0))
    assert (d.status, d.attempts, d.last_status) == (FAILED, 3, None)
    d.retry(NOW)
    with pytest.raises(NotFailed):
        d.retry(NOW)  # pending now: only a failed one can be retried
