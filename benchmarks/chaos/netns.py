"""Worker hosts on separate networks (Linux network namespaces; root only).

Four namespaces of our own: ``<prefix>-svc`` holds the sink, Redis and PostgreSQL and the
harness itself; ``<prefix>-h1..h3`` each hold one worker host, joined to the services by a
veth pair of its own in 10.213.<i>.0/24. Those addresses exist only inside these namespaces;
the machine's own interfaces are never touched. Cutting a host off takes its link down on the
services' side: its TCP connections hang as on a real partition (no reset is sent).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks.chaos.config import Config
from benchmarks.chaos.infra import ROOT
from benchmarks.chaos.outcome import Outcome

HOSTS = 3


def netns_available() -> str | None:
    """None when network namespaces can be used here, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    probe = f"chaos-probe-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, check=False)
    if made.returncode != 0:
        return f"ip netns add failed: {made.stderr.decode(errors='replace').strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)
    return None


def ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.decode(errors='replace')}")


def names(prefix: str) -> tuple[str, list[str], list[str], list[str]]:
    """(services namespace, host namespaces, services-side links, host-side links)."""
    tag = prefix[-8:]
    return (
        f"{prefix}-svc",
        [f"{prefix}-h{i}" for i in range(1, HOSTS + 1)],
        [f"cs{tag}{i}" for i in range(1, HOSTS + 1)],
        [f"ch{tag}{i}" for i in range(1, HOSTS + 1)],
    )


def gateway(i: int) -> str:
    return f"10.213.{i + 1}.1"


def setup(prefix: str) -> None:
    svc, hosts, svc_links, host_links = names(prefix)
    ip("netns", "add", svc)
    ip("-n", svc, "link", "set", "lo", "up")
    for i, host in enumerate(hosts):
        ip("netns", "add", host)
        ip("-n", host, "link", "set", "lo", "up")
        # Both ends are born in our namespaces: the machine's own namespace never sees them.
        ip(
            "link",
            "add",
            svc_links[i],
            "netns",
            svc,
            "type",
            "veth",
            "peer",
            "name",
            host_links[i],
            "netns",
            host,
        )
        ip("-n", svc, "addr", "add", f"{gateway(i)}/24", "dev", svc_links[i])
        ip("-n", svc, "link", "set", svc_links[i], "up")
        ip("-n", host, "addr", "add", f"10.213.{i + 1}.2/24", "dev", host_links[i])
        ip("-n", host, "link", "set", host_links[i], "up")


def teardown(prefix: str) -> None:
    svc, hosts, _, _ = names(prefix)
    for name in [*hosts, svc]:
        # Deleting a namespace deletes its veth ends (and so their peers).
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def inside_config(cfg: Config, prefix: str) -> Config:
    """The configuration of the run inside the services namespace."""
    _, hosts, _, _ = names(prefix)
    cfg.workers = HOSTS
    cfg.worker_hosts = [(gateway(i), hosts[i]) for i in range(HOSTS)]
    cfg.service_hosts = ["127.0.0.1", *(gateway(i) for i in range(HOSTS))]
    cfg.netns_prefix = prefix
    return cfg


def cut(cfg: Config, i: int) -> None:
    svc, _, svc_links, _ = names(cfg.netns_prefix)
    ip("-n", svc, "link", "set", svc_links[i], "down")


def heal(cfg: Config, i: int) -> None:
    svc, _, svc_links, _ = names(cfg.netns_prefix)
    ip("-n", svc, "link", "set", svc_links[i], "up")
    ip("-n", svc, "addr", "replace", f"{gateway(i)}/24", "dev", svc_links[i])


def run_in_namespaces(argv: list[str], result: Path) -> Outcome:
    """Set the namespaces up, run the scenario inside the services namespace, tear down."""
    prefix = f"chaos{os.getpid()}"
    try:
        setup(prefix)
        cmd = ["ip", "netns", "exec", names(prefix)[0], sys.executable, "-m", "benchmarks.chaos"]
        cmd += [*argv, "--inside-netns", prefix, "--result-file", str(result)]
        subprocess.run(cmd, cwd=ROOT, check=False, timeout=1800)
        data = json.loads(result.read_text())
        return Outcome.from_dict(data)
    except (OSError, RuntimeError, ValueError, subprocess.SubprocessError) as exc:
        return Outcome("netns-partition", error=f"{type(exc).__name__}: {exc}")
    finally:
        teardown(prefix)
        with contextlib.suppress(OSError):
            result.unlink()
