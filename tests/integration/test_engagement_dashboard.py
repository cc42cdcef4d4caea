"""The supervisor dashboard's credentials, over the real store: the page signs a browser in with a
form (the token becomes an HttpOnly, SameSite=Strict cookie, Secure outside development), and a
bearer token in a URL, which ends up in proxy logs and browser history, is refused outside
development. The app is the engagement service's own (web.create_app), served in process."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient

from services.engagement.config import EngagementConfig
from services.engagement.rules import load_rules
from services.engagement.web import DASHBOARD_COOKIE, create_app
from services.plumbing.settings import Settings
from tests.support import isolated_settings, token

pytestmark = pytest.mark.integration

# what a browser sends with a form on the dashboard's own page
SAME_ORIGIN = {"sec-fetch-site": "same-origin", "origin": "https://dash.test"}
PRODUCTION = {"DEPLOYMENT_ENVIRONMENT": "production", "IOP_JWT_SECRET": "a-production-secret-for-this-test-0123456789"}


async def dashboard_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    mongo: AsyncMongoClient = AsyncMongoClient(settings.mongodb_uri, tz_aware=True)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)  # never started: unused here
    db = mongo[f"{settings.mongodb_database_prefix}engagement"]
    app = create_app(settings, EngagementConfig(), load_rules(), db, producer, "/iop/engagement-test")
    # "https": a Secure cookie goes back only over HTTPS, as a browser does it
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://dash.test") as client:
        yield client
    await mongo.close()


@pytest.fixture
async def production() -> AsyncIterator[tuple[httpx.AsyncClient, Settings]]:
    settings = isolated_settings(**PRODUCTION)
    async for client in dashboard_client(settings):
        yield client, settings


@pytest.fixture
async def development() -> AsyncIterator[tuple[httpx.AsyncClient, Settings]]:
    settings = isolated_settings()  # DEPLOYMENT_ENVIRONMENT=test
    async for client in dashboard_client(settings):
        yield client, settings


def set_cookie_attributes(response: httpx.Response) -> set[str]:
    header = response.headers["set-cookie"]
    assert header.startswith(f"{DASHBOARD_COOKIE}="), header
    return {part.strip().lower() for part in header.split(";")[1:]}


async def test_outside_development_a_token_in_the_url_is_refused(production) -> None:
    client, settings = production
    supervisor = token(settings, "supervisor")
    for path in ("/dashboard", "/dashboard/api/overview"):
        reply = await client.get(path, params={"access_token": supervisor})
        assert reply.status_code == 400, (path, reply.status_code)
        assert reply.json()["error"] == "TOKEN_IN_URL"
        assert DASHBOARD_COOKIE not in reply.cookies
        assert "overview" not in reply.text and "clinicians" not in reply.text


async def test_outside_development_the_browser_signs_in_with_a_form_and_reads_with_the_cookie(production) -> None:
    client, settings = production
    page = await client.get("/dashboard")
    assert page.status_code == 401 and 'action="/dashboard/session"' in page.text  # the sign-in form
    refused = await client.post(
        "/dashboard/session", data={"access_token": token(settings, "clinician")}, headers=SAME_ORIGIN
    )
    assert refused.status_code == 403 and DASHBOARD_COOKIE not in refused.cookies
    supervisor = token(settings, "supervisor")
    signed_in = await client.post("/dashboard/session", data={"access_token": supervisor}, headers=SAME_ORIGIN)
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/dashboard"
    assert supervisor not in signed_in.headers["location"]
    assert {"httponly", "samesite=strict", "secure", "path=/dashboard"} <= set_cookie_attributes(signed_in)
    page = await client.get("/dashboard")  # the client sends the cookie it was given
    assert page.status_code == 200 and 'id="attendance-chart"' in page.text
    assert page.headers["cache-control"] == "no-store"
    overview = await client.get("/dashboard/api/overview")
    assert overview.status_code == 200 and "programs" in overview.json()
    # the header works as before, without a cookie
    client.cookies.clear()
    assert (await client.get("/dashboard/api/overview")).status_code == 401
    header = {"authorization": f"Bearer {supervisor}"}
    assert (await client.get("/dashboard/api/overview", headers=header)).status_code == 200
    # signing out removes the cookie
    await client.post("/dashboard/session", data={"access_token": supervisor}, headers=SAME_ORIGIN)
    out = await client.post("/dashboard/signout", headers=SAME_ORIGIN)
    assert out.status_code == 303 and DASHBOARD_COOKIE not in client.cookies
    assert {"max-age=0", "path=/dashboard"} <= set_cookie_attributes(out)  # the browser drops it
    assert (await client.get("/dashboard/api/overview")).status_code == 401


async def test_in_development_a_token_in_the_url_is_good_for_that_request_and_never_signs_in(development) -> None:
    """A GET that signed in was login CSRF: any page could sign a supervisor's browser in as another
    principal with a link or an image (`/dashboard?access_token=<its own token>`), and every later
    view was that principal's, and audited as theirs. In development the token in the URL still
    opens the page it is on, and sets nothing: only the form's POST signs in."""
    client, settings = development
    supervisor = token(settings, "supervisor")
    for headers in ({}, {"sec-fetch-site": "cross-site"}, SAME_ORIGIN):
        opened = await client.get("/dashboard", params={"access_token": supervisor}, headers=headers)
        assert opened.status_code == 200 and 'id="burnout-risk"' in opened.text, headers
        assert "set-cookie" not in opened.headers and DASHBOARD_COOKIE not in client.cookies
    assert (await client.get("/dashboard")).status_code == 401  # nothing kept
    overview = await client.get("/dashboard/api/overview", params={"access_token": supervisor})
    assert overview.status_code == 200 and "set-cookie" not in overview.headers
    bad = await client.get("/dashboard", params={"access_token": "not-a-token"})
    assert bad.status_code == 401 and "set-cookie" not in bad.headers
    # the cookie the form sets comes first: a link with another token does not switch principals
    signed_in = await client.post("/dashboard/session", data={"access_token": supervisor}, headers=SAME_ORIGIN)
    assert signed_in.status_code == 303
    attributes = set_cookie_attributes(signed_in)
    assert {"httponly", "samesite=strict", "path=/dashboard"} <= attributes
    assert "secure" not in attributes  # development over plain http://127.0.0.1
    clinician = await client.get("/dashboard", params={"access_token": token(settings, "clinician")})
    assert clinician.status_code == 200 and 'id="burnout-risk"' in clinician.text


async def test_another_sites_form_cannot_sign_the_browser_in_or_out(production) -> None:
    """Login CSRF: a page elsewhere POSTs its own token to /dashboard/session from the supervisor's
    browser, which then shows (and audits under) the other principal, or POSTs /dashboard/signout.
    Only the dashboard's own pages may: the browser's Sec-Fetch-Site, else Origin against Host."""
    client, settings = production
    supervisor = token(settings, "supervisor")
    for headers in ({"sec-fetch-site": "cross-site"}, {"origin": "https://evil.test"}, {"origin": "null"}, {}):
        forged = await client.post("/dashboard/session", data={"access_token": supervisor}, headers=headers)
        assert forged.status_code == 403 and forged.json()["error"] == "CROSS_SITE_REQUEST", headers
        assert DASHBOARD_COOKIE not in forged.cookies
    signed_in = await client.post("/dashboard/session", data={"access_token": supervisor}, headers=SAME_ORIGIN)
    assert signed_in.status_code == 303 and DASHBOARD_COOKIE in client.cookies
    by_origin = await client.post(
        "/dashboard/session", data={"access_token": supervisor}, headers={"origin": "https://dash.test"}
    )
    assert by_origin.status_code == 303  # a browser without Sec-Fetch-Site
    out = await client.post("/dashboard/signout", headers={"sec-fetch-site": "same-site"})
    assert out.status_code == 403 and DASHBOARD_COOKIE in client.cookies
    assert (await client.post("/dashboard/signout", headers=SAME_ORIGIN)).status_code == 303
    assert DASHBOARD_COOKIE not in client.cookies


async def test_dashboard_pages_may_not_be_framed_or_sniffed(production) -> None:
    """The PHI pages, and the sign-in page, in another site's frame (clickjacking) or sniffed."""
    client, settings = production
    header = {"authorization": f"Bearer {token(settings, 'supervisor')}"}
    for reply in (
        await client.get("/dashboard"),
        await client.get("/dashboard", headers=header),
        await client.get("/dashboard/api/overview", headers=header),
    ):
        assert reply.headers["cache-control"] == "no-store"
        assert reply.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in reply.headers["content-security-policy"]
        assert reply.headers["x-content-type-options"] == "nosniff"
