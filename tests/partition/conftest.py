"""A small cluster for partition tests: PostgreSQL and a versioned moto S3 bucket, one healthy worker
in this network namespace, and partitioned workers run in a namespace of their own that reaches
both services only through proxies the test controls (see network.py).

Needs root (network namespaces); outside CI it skips without, in CI it fails.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import pytest
from sqlalchemy import text

from imagestudio.config import Settings
from imagestudio.db import Database, make_database
from imagestudio.providers.builtin import BuiltinRenderer
from imagestudio.providers.registry import ProviderRegistry
from tests.conftest import PostgresServer, require_service
from tests.partition.network import Namespace, Proxy
from tests.storage.conftest import isolated_aws_environment, moto_endpoint  # noqa: F401

LEASE_SECONDS = 5.0
PARTITIONED_APPLICATION = "imagestudio-partitioned"
READY_SECONDS = 60.0
ACCESS_KEY = "partition-test"
SECRET_KEY = "partition-test-secret"


def wait_until(condition: Callable[[], object], seconds: float, what: str, interval: float = 0.05):
    """Poll `condition` until it returns something truthy; fail naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds:.0f}s")
        time.sleep(interval)


class WorkerProcess:
    """`imagestudio worker` as a subprocess, optionally inside a namespace; output goes to a log file."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path, namespace: Namespace | None = None) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        argv = [sys.executable, "-c", "from imagestudio.cli.main import main; main()", "worker",
                "--concurrency", "2", "--poll-interval", "0.2", "--backoff-base", "0.2", "--grace", "10"]  # fmt: skip
        if namespace is not None:
            argv = namespace.command(argv)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.worker_id = ""

    def wait_ready(self) -> str:
        def ready() -> str | None:
            if self.process.poll() is not None:
                raise AssertionError(f"worker {self.name} exited: {self.log()[-3000:]}")
            for line in self.log().splitlines():
                if line.startswith("imagestudio worker ") and line.endswith(")") and " ready " in line:
                    return line.split()[2]
            return None

        self.worker_id = wait_until(ready, READY_SECONDS, f"worker {self.name} ready")
        return self.worker_id

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def pause(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> int:
        if self.process.poll() is not None:
            return self.process.returncode
        self.resume()
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(10)


class Cluster:
    """Everything a partition scenario needs, and what it inspects afterwards."""

    def __init__(self, *, url: str, moto: str, bucket: str, namespace: Namespace, tmp: Path) -> None:
        self.url = url
        self.db: Database = make_database(url)
        self.bucket = bucket
        self.namespace = namespace
        self.tmp = tmp
        self.s3 = boto3.client(
            "s3", endpoint_url=moto, region_name="us-east-1", aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )  # fmt: skip
        database = urlsplit(url.replace("postgresql+psycopg://", "postgresql://"))
        moto_port = urlsplit(moto).port
        assert database.port is not None and moto_port is not None
        self.pg_proxy = Proxy(namespace.host_address, database.port).start()
        self.s3_proxy = Proxy(namespace.host_address, moto_port).start()
        self.settings = Settings(_env_file=None, data_dir=tmp / "submitter", lease_seconds=LEASE_SECONDS)  # type: ignore[call-arg]
        self.registry = ProviderRegistry()
        self.registry.register(BuiltinRenderer())
        direct = self._env(url, moto, tmp / "healthy")
        self.healthy = WorkerProcess("healthy", direct, tmp)
        self.partitioned: list[WorkerProcess] = []

    def _env(self, url: str, s3_endpoint: str, data_dir: Path) -> dict[str, str]:
        env = {name: value for name, value in os.environ.items() if not name.startswith(("IMAGESTUDIO_", "AWS_"))}
        storage = (
            f"s3://{self.bucket}?endpoint_url={s3_endpoint}&region=us-east-1"
            f"&access_key={ACCESS_KEY}&secret_key={SECRET_KEY}"
        )
        env |= {
            "IMAGESTUDIO_DATABASE_URL": url,
            "IMAGESTUDIO_STORAGE_URL": storage,
            "IMAGESTUDIO_DATA_DIR": str(data_dir),
            "IMAGESTUDIO_SECRET_KEY": "partition-tests-secret-key",
            "IMAGESTUDIO_LEASE_SECONDS": str(LEASE_SECONDS),
            "IMAGESTUDIO_MAX_RUNNING_PER_USER": "4",
            "IMAGESTUDIO_DEFAULT_MAX_ATTEMPTS": "3",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(self.tmp / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.tmp / "no-aws-credentials"),
            "PYTHONUNBUFFERED": "1",
        }
        return env

    def start_partitioned(self, **settings: str) -> WorkerProcess:
        """A worker inside the namespace, reaching PostgreSQL and S3 only through the proxies.
        `settings` are extra IMAGESTUDIO_* values (name without the prefix)."""
        parts = urlsplit(self.url)
        proxied_url = parts._replace(netloc=f"{parts.username}@{self.pg_proxy.address}").geturl()
        env = self._env(proxied_url, f"http://{self.s3_proxy.address}", self.tmp / f"cut-{len(self.partitioned)}")
        env |= {f"IMAGESTUDIO_{name.upper()}": value for name, value in settings.items()}
        # Its sessions are recognisable in pg_stat_activity.
        env["PGAPPNAME"] = PARTITIONED_APPLICATION
        worker = WorkerProcess(f"partitioned-{len(self.partitioned)}", env, self.tmp, self.namespace)
        self.partitioned.append(worker)
        worker.wait_ready()
        return worker

    def stuck_transactions(self) -> int:
        """Sessions of partitioned workers that PostgreSQL still holds inside a transaction (more than
        one when another statement, a lease renewal say, went through just before the freeze)."""
        with self.db.reading() as session:
            return int(
                session.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name "
                        "AND state LIKE 'idle in transaction%'"
                    ),
                    {"name": PARTITIONED_APPLICATION},
                ).scalar_one()
            )

    def heal(self) -> None:
        self.namespace.heal()
        for proxy in (self.pg_proxy, self.s3_proxy):
            proxy.disarm()
            proxy.thaw()

    def close(self) -> None:
        for worker in [*self.partitioned, self.healthy]:
            worker.stop()
        self.pg_proxy.close()
        self.s3_proxy.close()
        self.db.dispose()


@pytest.fixture(scope="module")
def cluster(
    moto_endpoint: str,  # noqa: F811
    postgres_server: PostgresServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    require_service(os.geteuid() == 0, "partition tests make network namespaces, which needs root")
    require_service(shutil.which("ip") is not None, "partition tests need iproute2's `ip`")
    url = postgres_server.create_migrated_database()
    bucket = f"partition-{uuid.uuid4().hex[:10]}"
    admin = boto3.client(
        "s3", endpoint_url=moto_endpoint, region_name="us-east-1", aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )  # fmt: skip
    admin.create_bucket(Bucket=bucket)
    # Every overwrite leaves the previous version behind: the proof that nothing was rewritten.
    admin.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    namespace = Namespace(subnet=random.randint(1, 250))
    namespace.create()
    tmp = tmp_path_factory.mktemp("partition")
    cluster = None
    try:
        cluster = Cluster(url=url, moto=moto_endpoint, bucket=bucket, namespace=namespace, tmp=tmp)
        cluster.healthy.wait_ready()
        yield cluster
    finally:
        if cluster is not None:
            cluster.close()
        namespace.destroy()
