"""Log-in and sign-up hardening: throttles, hashing off the event loop, equal timing."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import argon2
import pytest

from db.accounts.caches import AccountCaches
from domain.accounts import passwords
from domain.accounts.passwords import PasswordHashPool
from domain.accounts.throttle import LOGIN_BASE_DELAY_SECONDS, login_subject
from domain.state import AppState
from tests.helpers import SIGN_UP, GraphQLClient, GraphQLResult, sign_up

TunedGql = Callable[..., Awaitable[tuple[GraphQLClient, AppState]]]

LOG_IN = "mutation($u: String!, $p: String!) { logIn(username: $u, password: $p) { token } }"
RIGHT = "password123"  # what tests.helpers.sign_up uses
WRONG = "not-the-password"


async def log_in(gql: GraphQLClient, username: str, password: str) -> GraphQLResult:
    return await gql(LOG_IN, {"u": username, "p": password})


def retry_after(result: GraphQLResult) -> Any:
    assert result.codes == ["RATE_LIMITED"], result.errors
    return result.errors[0]["extensions"]["retryAfter"]


@pytest.fixture
def production_hashing() -> Iterator[None]:
    """Argon2 at its production cost for one test, then back to the suite's cheap one."""
    previous = passwords.current_hasher()
    passwords.configure_password_hashing(memory_cost_kib=65536, time_cost=3)
    yield
    passwords.configure_password_hashing(
        memory_cost_kib=previous.memory_cost, time_cost=previous.time_cost
    )


async def test_wrong_passwords_earn_growing_delays(tuned_gql: TunedGql) -> None:
    assert LOGIN_BASE_DELAY_SECONDS == 1.0
    gql, state = await tuned_gql(login_free_failures=2)
    await sign_up(gql, "victim")
    # Two free failures; the second earns a 1 s delay.
    assert (await log_in(gql, "victim", WRONG)).codes == ["UNAUTHENTICATED"]
    assert (await log_in(gql, "victim", WRONG)).codes == ["UNAUTHENTICATED"]
    assert retry_after(await log_in(gql, "victim", WRONG)) == 1
    # During the delay even the right password is refused, unchecked and uncounted.
    assert retry_after(await log_in(gql, "VICTIM", RIGHT)) == 1
    assert await state.of(AccountCaches).login_failures.failures(login_subject("victim")) == 2
    await asyncio.sleep(1.0)
    # The third failure doubles the delay.
    assert (await log_in(gql, "victim", WRONG)).codes == ["UNAUTHENTICATED"]
    assert retry_after(await log_in(gql, "victim", RIGHT)) == 2
    await asyncio.sleep(2.0)
    # A success clears the count: two free failures again.
    (await log_in(gql, "victim", RIGHT)).ok()
    assert await state.of(AccountCaches).login_failures.failures(login_subject("victim")) == 0
    assert (await log_in(gql, "victim", WRONG)).codes == ["UNAUTHENTICATED"]
    assert (await log_in(gql, "victim", WRONG)).codes == ["UNAUTHENTICATED"]
    assert retry_after(await log_in(gql, "victim", RIGHT)) == 1


async def test_unknown_accounts_are_throttled_like_real_ones(tuned_gql: TunedGql) -> None:
    gql, _ = await tuned_gql(login_free_failures=2)
    await sign_up(gql, "real")
    for name in ("real", "made.up"):
        codes = [(await log_in(gql, name, WRONG)).codes for _ in range(3)]
        assert codes == [["UNAUTHENTICATED"], ["UNAUTHENTICATED"], ["RATE_LIMITED"]]
    # A username and an email are counted apart (joining them would tell who owns it).
    assert (await log_in(gql, "real@example.com", WRONG)).codes == ["UNAUTHENTICATED"]


async def test_log_in_limit_per_ip(tuned_gql: TunedGql) -> None:
    gql, _ = await tuned_gql(login_ip_capacity=3, login_ip_per_second=0.01)
    await sign_up(gql, "owner")
    for name in ("owner", "someone", "anyone"):
        assert (await log_in(gql, name, WRONG)).codes == ["UNAUTHENTICATED"]
    # The address's bucket is empty: one attempt per 100 s.
    refused = await log_in(gql, "owner", RIGHT)
    assert 95 <= retry_after(refused) <= 100
    # Sign-ups have their own bucket.
    await sign_up(gql, "newcomer")


async def test_sign_up_limit_per_ip(tuned_gql: TunedGql) -> None:
    gql, _ = await tuned_gql(signup_ip_capacity=2, signup_ip_per_second=0.01)
    await sign_up(gql, "first")
    await sign_up(gql, "second")
    refused = await gql(
        SIGN_UP, {"username": "third", "email": "third@example.com", "password": RIGHT}
    )
    assert 95 <= retry_after(refused) <= 100
    # Nothing was created, and log-ins are not affected.
    assert (await log_in(gql, "third", RIGHT)).codes == ["UNAUTHENTICATED"]
    (await log_in(gql, "first", RIGHT)).ok()


def test_dummy_hash_follows_the_parameters() -> None:
    previous = passwords.current_hasher()
    try:
        for memory, passes in ((2048, 2), (1024, 1)):
            passwords.configure_password_hashing(memory_cost_kib=memory, time_cost=passes)
            real = passwords.hash_password("whatever1")
            assert argon2.extract_parameters(passwords.dummy_hash()) == (
                argon2.extract_parameters(real)
            )
            assert not passwords.verify_password(None, "whatever1")
            assert passwords.verify_password(real, "whatever1")
    finally:
        passwords.configure_password_hashing(
            memory_cost_kib=previous.memory_cost, time_cost=previous.time_cost
        )


@pytest.mark.slow
@pytest.mark.usefixtures("production_hashing")
async def test_concurrent_log_ins_do_not_stall_other_requests(tuned_gql: TunedGql) -> None:
    gql, state = await tuned_gql(login_free_failures=10_000)
    await sign_up(gql, "busy")
    stop = asyncio.Event()
    logged_in = 0

    async def log_in_loop() -> None:
        nonlocal logged_in
        while not stop.is_set():
            (await log_in(gql, "busy", RIGHT)).ok()
            logged_in += 1

    loops = [asyncio.create_task(log_in_loop()) for _ in range(4)]
    await asyncio.sleep(0.1)  # hashing under way
    latencies = []
    deadline = time.perf_counter() + 1.5
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        assert (await gql("{ __typename }")).ok() == {"__typename": "Query"}
        latencies.append(time.perf_counter() - started)
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.gather(*loops)
    # Argon2 at 64 MiB takes ~100 ms: with it on the event loop, the cheap query would wait
    # behind one hash after another.
    assert logged_in >= 4
    assert state.of(PasswordHashPool).in_use == 0
    assert statistics.median(latencies) < 0.05, sorted(latencies)


@pytest.mark.slow
@pytest.mark.usefixtures("production_hashing")
async def test_unknown_account_takes_as_long_as_a_wrong_password(tuned_gql: TunedGql) -> None:
    gql, _ = await tuned_gql(login_free_failures=10_000)
    await sign_up(gql, "known")
    timings: dict[str, list[float]] = {
        "known": [],
        "nobody.here": [],
        "known@example.com": [],
        "nobody@example.com": [],
    }
    for _ in range(5):
        for login, samples in timings.items():
            started = time.perf_counter()
            assert (await log_in(gql, login, WRONG)).codes == ["UNAUTHENTICATED"]
            samples.append(time.perf_counter() - started)
    medians = {login: statistics.median(samples) for login, samples in timings.items()}
    # Both pay for one Argon2 verification (~100 ms); without the dummy hash the unknown
    # account would answer in a few milliseconds.
    assert medians["known"] > 0.03, medians
    assert 0.5 < medians["nobody.here"] / medians["known"] < 2, medians
    assert 0.5 < medians["nobody@example.com"] / medians["known@example.com"] < 2, medians


@pytest.mark.slow
@pytest.mark.usefixtures("production_hashing")
async def test_full_hash_queue_answers_service_unavailable(tuned_gql: TunedGql) -> None:
    gql, state = await tuned_gql(
        password_hash_threads=1, password_hash_queue=1, login_free_failures=10_000
    )
    names = [f"ghost{index}" for index in range(6)]
    results = await asyncio.gather(*(log_in(gql, name, WRONG) for name in names))
    codes = [result.codes for result in results]
    # One hashing, one waiting: the others are turned away at once.
    assert codes.count(["UNAUTHENTICATED"]) == 2, codes
    assert codes.count(["SERVICE_UNAVAILABLE"]) == 4, codes
    assert state.of(PasswordHashPool).in_use == 0
    # A refusal for a full queue is not a wrong password.
    failures = [
        await state.of(AccountCaches).login_failures.failures(login_subject(name)) for name in names
    ]
    assert sorted(failures) == [0, 0, 0, 0, 1, 1]
    # Slots come back: the next log-in is checked as usual.
    assert (await log_in(gql, "ghost0", WRONG)).codes == ["UNAUTHENTICATED"]
