"""Where the data lives for a process: the servers the settings name, or embedded ones
started from wheels for any they leave out. Connecting to them is ``db/runtime.py``'s."""

from __future__ import annotations

from dataclasses import dataclass

from infra.embedded import EmbeddedServers, S3Endpoint
from infra.settings import Settings


@dataclass
class Servers:
    """Where the data lives for this process; ``embedded`` is set when we started them."""

    database_urls: list[str]
    redis_url: str
    s3: S3Endpoint | None = None
    embedded: EmbeddedServers | None = None

    def stop(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()


def locate_servers(settings: Settings, *, postgres_cleanup: str = "stop") -> Servers:
    """The servers the settings name, starting embedded ones for any they leave out."""
    embedded: EmbeddedServers | None = None
    database_urls = list(settings.database_urls)
    redis_url = settings.redis_url
    want_s3 = settings.s3_endpoint_url is None
    if not database_urls or redis_url is None or want_s3:
        embedded = EmbeddedServers(
            settings.data_dir,
            settings.embedded_databases,
            postgres_cleanup=postgres_cleanup,
        )
        started_urls, started_redis = embedded.start(
            want_postgres=not database_urls, want_redis=redis_url is None, want_s3=want_s3
        )
        database_urls = database_urls or started_urls
        redis_url = redis_url or started_redis
    assert redis_url is not None
    if want_s3:
        assert embedded is not None
        assert embedded.s3 is not None
        s3 = embedded.s3
    else:
        assert settings.s3_endpoint_url is not None
        s3 = S3Endpoint(
            url=settings.s3_endpoint_url,
            access_key_id=settings.s3_access_key_id or "",
            secret_access_key=settings.s3_secret_access_key or "",
        )
    return Servers(database_urls=database_urls, redis_url=redis_url, s3=s3, embedded=embedded)


def servers_environment(servers: Servers) -> dict[str, str]:
    """The variables that point another process at these servers: the same databases,
    Redis and object store, so that it starts none of its own."""
    environment = {
        "APERTURE_DATABASE_URLS": ",".join(servers.database_urls),
        "APERTURE_REDIS_URL": servers.redis_url,
    }
    if servers.s3 is None:
        return environment
    return {
        **environment,
        "APERTURE_S3_ENDPOINT_URL": servers.s3.url,
        "APERTURE_S3_ACCESS_KEY_ID": servers.s3.access_key_id,
        "APERTURE_S3_SECRET_ACCESS_KEY": servers.s3.secret_access_key,
    }
