"""SSRF defences: at channel creation and again at every send (docs/api.md, Channels)."""

import ipaddress
import socket

import pytest

from notifications import services, transport
from notifications.models import DeliveryAttempt
from tests.factories import make_access_token, make_account
from tests.notifications.conftest import deliver_all, make_integrator, open_channel

PUBLIC_IP = "93.184.215.14"

BLOCKED_URLS = [
    "http://10.0.0.1/hook",
    "http://127.0.0.1/hook",
    "http://127.0.0.2:8080/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[::ffff:10.0.0.1]/hook",
    "http://[fd00:ec2::254]/hook",
    "http://[fe80::1]/hook",
    "http://[64:ff9b::a00:1]/hook",
    "http://100.64.0.1/hook",
    "http://192.168.1.10/hook",
    "http://172.16.0.1/hook",
    "http://0.0.0.0/hook",
    "http://224.0.0.1/hook",
    "http://2130706433/hook",
    "http://0x7f000001/hook",
    "http://017700000001/hook",
    "http://127.1/hook",
    "http://0177.0.0.1/hook",
    "http://localhost/hook",
    "http://api.localhost/hook",
    "http://LOCALHOST./hook",
    "file:///etc/passwd",
    "ftp://example.com/hook",
    "gopher://example.com/",
    "http://user:pass@example.com/hook",
    "http://example.com@127.0.0.1/hook",
    "https://example.com/" + "a" * 1024,
    "not a url",
    "http:///nohost",
]


@pytest.fixture
def fake_dns(monkeypatch):
    """Monkeypatched socket.getaddrinfo: names map to a list of answers, one per lookup."""
    answers: dict[str, list[str]] = {}
    calls: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in answers:
            return real(host, port, *args, **kwargs)
        calls.append(host)
        queue = answers[host]
        ip = queue.pop(0) if len(queue) > 1 else queue[0]
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        return [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (ip, port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    getaddrinfo.answers = answers
    getaddrinfo.calls = calls
    return getaddrinfo


@pytest.mark.django_db
@pytest.mark.parametrize("url", BLOCKED_URLS)
def test_create_channel_rejects_internal_and_malformed_urls_by_default(client, url):
    account = make_account()
    token = make_access_token(account=account)
    response = client.post(
        "/v1/channels",
        {"callback_url": url},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 422
    [error] = response.json()["errors"]["callback_url"]
    assert error["key"] in ("errors.blocked_address", "errors.invalid_url")


@pytest.mark.parametrize(
    "ip",
    [
        "127.0.0.1",
        "10.1.2.3",
        "169.254.169.254",
        "100.64.0.1",
        "::1",
        "fd00::1",
        "fe80::1",
        "::ffff:127.0.0.1",
        "::ffff:192.168.0.1",
        "2002:7f00:1::",
        "64:ff9b::7f00:1",
        "::",
    ],
)
def test_is_blocked_blocks_internal_addresses(ip):
    assert transport.is_blocked(ipaddress.ip_address(ip))


@pytest.mark.parametrize("ip", [PUBLIC_IP, "8.8.8.8", "2606:4700:4700::1111"])
def test_is_blocked_lets_public_addresses_through(ip):
    assert not transport.is_blocked(ipaddress.ip_address(ip))


def test_allowed_networks_permit_only_what_they_contain():
    allowed = transport.parse_networks(["127.0.0.1/32"])
    assert not transport.is_blocked(ipaddress.ip_address("127.0.0.1"), allowed)
    assert not transport.is_blocked(ipaddress.ip_address("::ffff:127.0.0.1"), allowed)
    assert transport.is_blocked(ipaddress.ip_address("127.0.0.2"), allowed)
    assert transport.is_blocked(ipaddress.ip_address("10.0.0.1"), allowed)


@pytest.mark.django_db
def test_create_channel_rejects_a_name_resolving_to_a_private_address(fake_dns):
    fake_dns.answers["hooks.example.com"] = ["10.0.0.7"]
    with pytest.raises(services.ChannelError) as exc:
        open_channel(make_account(), make_integrator(), "https://hooks.example.com/cb")
    assert exc.value.key == "errors.blocked_address"


@pytest.mark.django_db
def test_create_channel_rejects_a_name_with_one_private_answer_among_public_ones(monkeypatch):
    def getaddrinfo(host, port, *args, **kwargs):
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC_IP, port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    with pytest.raises(services.ChannelError):
        open_channel(make_account(), make_integrator(), "https://mixed.example.com/cb")


@pytest.mark.django_db
def test_create_channel_accepts_a_public_name(fake_dns):
    fake_dns.answers["hooks.example.com"] = [PUBLIC_IP]
    channel = open_channel(make_account(), make_integrator(), "https://hooks.example.com/cb")
    assert channel.callback_url == "https://hooks.example.com/cb"


@pytest.mark.django_db
def test_dns_rebinding_public_then_private_never_reaches_the_internal_host(
    fake_dns, receiver, settings
):
    name = "rebind.example.com"
    fake_dns.answers[name] = [PUBLIC_IP, "127.0.0.1"]
    url = f"http://{name}:{receiver.port}/hook"
    open_channel(make_account(), make_integrator(), url)  # checked while it was public

    deliver_all()

    assert receiver.requests == []
    attempt = DeliveryAttempt.objects.get()
    assert attempt.error.startswith("blocked:")
    assert attempt.remote_ip == ""


@pytest.mark.django_db
def test_default_settings_block_the_loopback_receiver_at_send_time(receiver, settings):
    settings.PUSH_CALLBACK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    open_channel(make_account(), make_integrator(), receiver.url())
    settings.PUSH_CALLBACK_ALLOWED_NETWORKS = []  # the default

    deliver_all()

    assert receiver.requests == []
    assert DeliveryAttempt.objects.get().error.startswith("blocked:")


@pytest.mark.django_db
def test_sender_connects_to_the_address_it_checked_and_resolves_once(
    fake_dns, receiver, allow_loopback
):
    name = "hooks.example.test"
    # Allowed answer first; any second lookup would point at an unroutable address.
    fake_dns.answers[name] = ["127.0.0.1", "127.0.0.1", "10.255.255.1"]
    open_channel(make_account(), make_integrator(), f"http://{name}:{receiver.port}/hook")
    assert fake_dns.calls == [name]  # at creation

    stats = deliver_all()

    assert stats.delivered == 1
    assert fake_dns.calls == [name, name]  # exactly one lookup for the attempt
    [request] = receiver.requests
    assert request.headers["Host"] == f"{name}:{receiver.port}"
    assert DeliveryAttempt.objects.get().remote_ip == "127.0.0.1"


def test_post_refuses_blocked_literal_without_connecting(receiver):
    result = transport.post(receiver.url(), b"{}", {}, timeout=1)
    assert result.status_code is None
    assert result.error.startswith("blocked:")
    assert receiver.requests == []
