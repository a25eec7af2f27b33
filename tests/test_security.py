"""Secured nats-servers: user/password, token, nkey, creds file (operator, account and user JWTs), TLS and mutual TLS.

For each setup, get_store() configured through ``settings.EVENTSTORE`` saves and
reads; a wrong secret is an ``EventStoreUnavailable`` that says what failed and
never contains the secret; and no log line (DEBUG included, across a server
restart that exercises the reconnect lines) contains a secret either. The keys,
JWTs and certificates are made by the test (``nkeys``, ``trustme``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nkeys
import pytest
import trustme
from django.core.management import CommandError, call_command
from django.test import Client

from django_eventstore import Event, EventStoreUnavailable, StreamSetupError, get_store
from django_eventstore.testing import NatsServer

from .test_faults import _eventually  # call() once NATS is back

AUTHORIZATION = "authorization violation"


# ----- keys, JWTs and creds files, as nsc makes them -----


def new_key(prefix: int) -> nkeys.KeyPair:
    """A fresh nkey of a role (nkeys.PREFIX_BYTE_OPERATOR, _ACCOUNT, _USER)."""
    return nkeys.from_seed(nkeys.encode_seed(os.urandom(32), prefix))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def nats_jwt(issuer: nkeys.KeyPair, subject: nkeys.KeyPair, name: str, claims: dict[str, Any]) -> str:
    """A NATS JWT (v2) about subject, signed with the issuer's nkey (ed25519)."""
    body: dict[str, Any] = {"iat": int(time.time()), "iss": issuer.public_key.decode(), "name": name, "sub": subject.public_key.decode(), "nats": {**claims, "version": 2}}
    body["jti"] = base64.b32encode(hashlib.new("sha512_256", json.dumps(body, sort_keys=True).encode()).digest()).rstrip(b"=").decode()
    signed = f"{_b64(json.dumps({'typ': 'JWT', 'alg': 'ed25519-nkey'}).encode())}.{_b64(json.dumps(body).encode())}"
    return f"{signed}.{_b64(issuer.sign(signed.encode()))}"


UNLIMITED = {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1, "wildcards": True, "conn": -1, "leaf": -1}
JETSTREAM = {"mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1}


@dataclass
class Operator:
    """An operator with a system account and one JetStream-enabled account, for a server in operator mode."""

    key: nkeys.KeyPair = field(default_factory=lambda: new_key(nkeys.PREFIX_BYTE_OPERATOR))
    account: nkeys.KeyPair = field(default_factory=lambda: new_key(nkeys.PREFIX_BYTE_ACCOUNT))
    system: nkeys.KeyPair = field(default_factory=lambda: new_key(nkeys.PREFIX_BYTE_ACCOUNT))
    jetstream: bool = True  # whether the account's JWT enables JetStream

    def server_config(self) -> str:
        """The server's config: trust the operator, accounts preloaded in a memory resolver."""
        limits = {**UNLIMITED, **JETSTREAM} if self.jetstream else UNLIMITED
        accounts = {
            self.account.public_key.decode(): nats_jwt(self.key, self.account, "app", {"type": "account", "limits": limits}),
            self.system.public_key.decode(): nats_jwt(self.key, self.system, "SYS", {"type": "account", "limits": UNLIMITED}),
        }
        preload = "\n".join(f'  {public}: "{token}"' for public, token in accounts.items())
        operator = nats_jwt(self.key, self.key, "test-operator", {"type": "operator"})
        return f'operator: "{operator}"\nsystem_account: {self.system.public_key.decode()}\nresolver: MEMORY\nresolver_preload: {{\n{preload}\n}}\n'


def creds_file(path: Path, account: nkeys.KeyPair) -> tuple[Path, list[str]]:
    """A .creds file of a new user of account (its JWT and nkey seed); and the secrets in it."""
    user = new_key(nkeys.PREFIX_BYTE_USER)
    token = nats_jwt(account, user, "app-user", {"type": "user", "subs": -1, "data": -1, "payload": -1})
    seed = user.seed.decode()
    path.write_text(
        f"-----BEGIN NATS USER JWT-----\n{token}\n------END NATS USER JWT------\n\n"
        f"-----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
    )
    return path, [seed, token.rsplit(".", 1)[1]]  # the seed, and the JWT's signature (the JWT is a bearer credential)


# ----- the setups -----


@dataclass
class Setup:
    """A server config, the client settings that connect to it and settings with a wrong secret."""

    config: str
    servers: list[str]
    options: dict[str, Any]
    wrong_servers: list[str]
    wrong_options: dict[str, Any]
    failure: str  # what the wrong secret's error must say (a regex)
    secrets: list[str]  # never in an error message or a log line


def password_in_url(tmp: Path, url: str) -> Setup:
    config = 'authorization { user: alice, password: "pw-right-7Q2" }\n'
    host = url.removeprefix("nats://")
    return Setup(config, [f"nats://alice:pw-right-7Q2@{host}"], {}, [f"nats://alice:pw-wrong-9Z4@{host}"], {}, AUTHORIZATION, ["pw-right-7Q2", "pw-wrong-9Z4"])


def password_in_options(tmp: Path, url: str) -> Setup:
    config = 'authorization { user: alice, password: "pw-right-3K8" }\n'
    right = {"user": "alice", "password": "pw-right-3K8"}
    return Setup(config, [url], right, [url], {**right, "password": "pw-wrong-5M1"}, AUTHORIZATION, ["pw-right-3K8", "pw-wrong-5M1"])


def token(tmp: Path, url: str) -> Setup:
    config = 'authorization { token: "tok-right-6H3" }\n'
    return Setup(config, [url], {"token": "tok-right-6H3"}, [url], {"token": "tok-wrong-2W9"}, AUTHORIZATION, ["tok-right-6H3", "tok-wrong-2W9"])


def nkey(tmp: Path, url: str) -> Setup:
    user, stranger = new_key(nkeys.PREFIX_BYTE_USER), new_key(nkeys.PREFIX_BYTE_USER)
    config = f"authorization {{ users: [ {{ nkey: {user.public_key.decode()} }} ] }}\n"
    seeds = [user.seed.decode(), stranger.seed.decode()]
    return Setup(config, [url], {"nkeys_seed_str": seeds[0]}, [url], {"nkeys_seed_str": seeds[1]}, AUTHORIZATION, seeds)


def creds(tmp: Path, url: str) -> Setup:
    operator = Operator()
    good, good_secrets = creds_file(tmp / "app.creds", operator.account)
    bad, bad_secrets = creds_file(tmp / "stranger.creds", Operator().account)  # an account of another operator
    return Setup(operator.server_config(), [url], {"user_credentials": str(good)}, [url], {"user_credentials": str(bad)}, AUTHORIZATION, good_secrets + bad_secrets)


def _tls_server(tmp: Path, ca: trustme.CA, verify: bool) -> str:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.cert_chain_pems[0].write_to_path(str(tmp / "server.pem"))
    cert.private_key_pem.write_to_path(str(tmp / "server-key.pem"))
    ca.cert_pem.write_to_path(str(tmp / "ca.pem"))
    return f'tls {{ cert_file: "{tmp / "server.pem"}", key_file: "{tmp / "server-key.pem"}", ca_file: "{tmp / "ca.pem"}", verify: {str(verify).lower()} }}\n'


def _key_line(cert: trustme.LeafCert) -> str:
    """A line of the certificate's private key PEM (the key must never be logged)."""
    return cert.private_key_pem.bytes().decode().splitlines()[1]


def tls_with_token(tmp: Path, url: str) -> Setup:
    ca = trustme.CA()
    config = _tls_server(tmp, ca, verify=False) + 'authorization { token: "tok-right-4T7" }\n'
    trusting, stranger = ssl.create_default_context(), ssl.create_default_context()
    ca.configure_trust(trusting)
    trustme.CA().configure_trust(stranger)  # trusts another CA only: the server's certificate fails
    servers = [url.replace("nats://", "tls://")]
    return Setup(config, servers, {"tls": trusting, "token": "tok-right-4T7"}, servers, {"tls": stranger, "token": "tok-right-4T7"}, "certificate verify failed", ["tok-right-4T7"])


def mutual_tls(tmp: Path, url: str) -> Setup:
    ca = trustme.CA()
    config = _tls_server(tmp, ca, verify=True)
    client, stranger = ssl.create_default_context(), ssl.create_default_context()
    keys = []
    for context, issuer in ((client, ca), (stranger, trustme.CA())):
        ca.configure_trust(context)
        cert = issuer.issue_cert("app@example.com")  # a client certificate: from the server's CA, or from another
        cert.configure_cert(context)
        keys.append(_key_line(cert))
    servers = [url.replace("nats://", "tls://")]
    return Setup(config, servers, {"tls": client}, servers, {"tls": stranger}, "unknown ca", keys)


SETUPS: dict[str, Callable[[Path, str], Setup]] = {
    "password-in-url": password_in_url,
    "password-in-options": password_in_options,
    "token": token,
    "nkey": nkey,
    "creds": creds,
    "tls-with-token": tls_with_token,
    "mutual-tls": mutual_tls,
}


@pytest.fixture(params=list(SETUPS))
def secured(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Setup, NatsServer]]:
    """A setup and its running server (on a data dir of the test's own, so it can be restarted on it)."""
    server = NatsServer(store_dir=tmp_path / "data", keep_data=True)
    setup = SETUPS[request.param](tmp_path, server.url)
    config = tmp_path / "server.conf"
    config.write_text(setup.config)
    server.args = ["-c", str(config)]
    server.start()
    try:
        yield setup, server
    finally:
        server.stop()


def configure(settings: Any, servers: list[str], options: dict[str, Any], timeout: float) -> None:
    """Point get_store() at the secured server (the test's stream and prefix are kept)."""
    settings.EVENTSTORE = {**settings.EVENTSTORE, "SERVERS": servers, "CONNECT_OPTIONS": options, "TIMEOUT": timeout}


def assert_no_secret(text: str, setup: Setup, where: str) -> None:
    for secret in setup.secrets:
        assert secret not in text, f"a secret ({secret[:4]}...) is in the {where}"


def test_a_save_and_a_read_work_and_no_secret_reaches_the_log(secured: tuple[Setup, NatsServer], settings: Any, caplog: pytest.LogCaptureFixture) -> None:
    setup, server = secured
    caplog.set_level(logging.DEBUG)
    configure(settings, setup.servers, setup.options, timeout=3.0)
    store = get_store()
    first = store.save_event(Event(actor_id="order-1", event_type="Placed", version=1, data={"total": 42}))
    assert [(e.id, e.data) for e in store.get_events("order-1")] == [(first.id, {"total": 42})]

    server.stop()  # a restart: the disconnect, error and reconnect lines are written
    server.start()
    second = _eventually(lambda: store.save_event(Event(actor_id="order-1", event_type="Paid", version=2)))
    assert [e.id for e in store.get_events("order-1")] == [first.id, second.id]
    assert "reconnected to NATS" in caplog.text  # the log lines under test were written
    assert_no_secret(caplog.text, setup, "log")


@pytest.mark.django_db
def test_a_wrong_secret_says_what_failed_and_not_the_secret(
    secured: tuple[Setup, NatsServer], settings: Any, caplog: pytest.LogCaptureFixture, admin_client: Client
) -> None:
    setup, _ = secured
    caplog.set_level(logging.DEBUG)
    configure(settings, setup.wrong_servers, setup.wrong_options, timeout=1.5)
    with pytest.raises(EventStoreUnavailable, match=setup.failure) as error:
        get_store().save_event(Event(actor_id="order-1", event_type="Placed", version=1))
    print(f"\n{error.value}")
    assert_no_secret(str(error.value), setup, "error message")
    # the surfaces say it too (at once now: the store fails fast until NATS is back), without the secret
    response = admin_client.get("/api/eventstore/actors/order-1/version/")
    assert response.status_code == 503
    assert_no_secret(response.content.decode(), setup, "API's answer")
    with pytest.raises(CommandError, match=setup.failure) as command_error:
        call_command("eventstore_status")
    assert_no_secret(str(command_error.value), setup, "command's error")
    assert_no_secret(caplog.text, setup, "log")
    configure(settings, setup.servers, setup.options, timeout=3.0)
    assert get_store().get_latest_version("order-1") == 0  # nothing was stored


def test_an_account_without_jetstream_is_a_setup_error_saying_so(settings: Any, tmp_path: Path) -> None:
    operator = Operator(jetstream=False)
    config = tmp_path / "server.conf"
    config.write_text(operator.server_config())
    path, _ = creds_file(tmp_path / "app.creds", operator.account)
    with NatsServer(args=["-c", str(config)]) as server:
        configure(settings, [server.url], {"user_credentials": str(path)}, timeout=3.0)
        with pytest.raises(StreamSetupError, match="JetStream not enabled for account"):
            get_store().save_event(Event(actor_id="order-1", event_type="Placed", version=1))
