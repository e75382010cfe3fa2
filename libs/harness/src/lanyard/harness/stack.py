"""Start the services (the four and the console) and the gateway as real processes against a given Kafka and Redis.

Used by the end-to-end tests and the benchmarks: the same `python -m lanyard.<service>` and
the same nginx configuration as `make run`, on free ports, with logs in a directory of the
caller's choice. Each service gets its own Redis database.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from lanyard.runtime.testing import ROOT, free_port

SERVICES = ("policy", "session", "idp", "audit", "console")
REDIS_DB = {"idp": 1, "session": 2, "policy": 3, "audit": 4, "console": 5}
HEALTH = {"console": "/console/health/ready"}
"""Readiness through the gateway: `/_health/<service>`, except where a service serves its own."""


@dataclass
class Stack:
    """A running stack: where it answers and where its logs are."""

    base_url: str
    ports: dict[str, int]
    env: dict[str, str]
    log_dir: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _logs: dict[str, Any] = field(default_factory=dict)

    def service_url(self, service: str) -> str:
        """A service's own origin (bypassing the gateway), for /metrics and /health."""
        return f"http://127.0.0.1:{self.ports[service]}"

    def start_service(self, service: str, **extra_env: str) -> None:
        """(Re)start one service process."""
        env = {**self.env, **extra_env}
        if service not in self._logs:
            self._logs[service] = (self.log_dir / f"{service}.log").open("ab")
        out = self._logs[service]
        self.processes[service] = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", f"lanyard.{service}"], env=env, stdout=out, stderr=subprocess.STDOUT
        )

    def close_logs(self) -> None:
        """Close the log files (after every process stopped)."""
        for log in self._logs.values():
            log.close()
        self._logs.clear()

    def stop_service(self, service: str, sig: int = signal.SIGTERM, timeout_s: float = 15) -> None:
        """Stop one service process (SIGTERM waits for a clean shutdown; SIGKILL does not)."""
        proc = self.processes.pop(service, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def wait_ready(self, services: tuple[str, ...] = SERVICES, timeout_s: float = 90) -> None:
        """Until every service's readiness answers 200 through the gateway (bounded)."""
        deadline = time.monotonic() + timeout_s
        pending = list(services)
        with httpx.Client(timeout=2) as client:
            while pending:
                service = pending[0]
                proc = self.processes.get(service)
                if proc is not None and proc.poll() is not None:
                    raise RuntimeError(f"{service} exited with {proc.returncode}; see {self.log_dir}/{service}.log")
                try:
                    path = HEALTH.get(service, f"/_health/{service}")
                    if client.get(f"{self.base_url}{path}").status_code == 200:
                        pending.pop(0)
                        continue
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{service} not ready after {timeout_s}s; see {self.log_dir}/{service}.log")
                time.sleep(0.1)


@contextlib.contextmanager
def local_stack(kafka_bootstrap: str, redis_url: str, log_dir: Path, **extra_env: str) -> Iterator[Stack]:
    """Run every service and the gateway; stop all of them on exit."""
    log_dir.mkdir(parents=True, exist_ok=True)
    ports = {service: free_port() for service in SERVICES}
    gateway_port = free_port()
    base_url = f"http://127.0.0.1:{gateway_port}"
    redis_base = redis_url.rsplit("/", 1)[0]
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "REDIS_URL": redis_url,
        "LANYARD_PUBLIC_BASE_URL": base_url,
        "GATEWAY_PORT": str(gateway_port),
        "GATEWAY_DATA_DIR": str(log_dir / "gateway"),
        "LANYARD_AUDIT_DB_PATH": str(log_dir / "audit.sqlite"),
    }
    for service in SERVICES:
        prefix = f"LANYARD_{service.upper()}_"
        env[prefix + "HTTP_PORT"] = str(ports[service])
        env[prefix + "REDIS_URL"] = f"{redis_base}/{REDIS_DB[service]}"
        env[prefix + "LOG_JSON"] = "true"
    env.update(extra_env)
    stack = Stack(base_url=base_url, ports=ports, env=env, log_dir=log_dir)
    gateway = ROOT / "deploy/gateway/gateway.sh"
    try:
        for service in SERVICES:
            stack.start_service(service)
        subprocess.run([str(gateway), "start"], env=env, check=True, capture_output=True, timeout=120)  # noqa: S603
        stack.wait_ready()
        yield stack
    finally:
        subprocess.run([str(gateway), "stop"], env=env, check=False, capture_output=True, timeout=60)  # noqa: S603
        for service in reversed(SERVICES):
            stack.stop_service(service)
        stack.close_logs()
