"""The client address the login route counts failures under: the connection's, or, only from a
proxy listed in trusted_proxies, what X-Forwarded-For says."""

from __future__ import annotations

import ipaddress

import pytest
from starlette.requests import Request

from crispml.web.login import client_address

PROXIES = [ipaddress.ip_network("10.0.0.5"), ipaddress.ip_network("10.1.0.0/16")]


def request(peer: str, *forwarded: str) -> Request:
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
    return Request({"type": "http", "method": "POST", "headers": headers, "client": (peer, 4000)})


def test_without_trusted_proxies_the_header_is_ignored() -> None:
    assert client_address(request("192.0.2.8", "203.0.113.1"), []) == "192.0.2.8"


def test_an_untrusted_peer_cannot_claim_another_address() -> None:
    assert client_address(request("192.0.2.8", "203.0.113.1"), PROXIES) == "192.0.2.8"


@pytest.mark.parametrize(
    ("forwarded", "client"),
    [
        (["203.0.113.1"], "203.0.113.1"),
        # What the client wrote itself is to the left of what the proxies appended.
        (["198.51.100.66, 203.0.113.1"], "203.0.113.1"),
        (["198.51.100.66", "203.0.113.1, 10.1.2.3"], "203.0.113.1"),  # two proxies
        (["203.0.113.1:5555"], "203.0.113.1"),
        (["[2001:db8::1]:443"], "2001:db8::1"),
        (["10.1.0.9"], "10.1.0.9"),  # an internal client: every hop trusted
        (["not-an-address"], "10.0.0.5"),  # a garbled header: the proxy is all we know
        ([], "10.0.0.5"),
    ],
)
def test_a_trusted_proxy_names_the_client(forwarded: list[str], client: str) -> None:
    assert client_address(request("10.0.0.5", *forwarded), PROXIES) == client
