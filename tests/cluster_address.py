"""The address the test stack publishes its cluster ports on (docs/scale-out.md): one of this host's, reachable
from a second compose project on its own network, as a LAN address is from another machine, and from no other.

Engines differ in what they report (issue 19: Debian's docker.io 20.10 records no Gateway in the default bridge's
IPAM config), so three answers are tried in order:

1. the default bridge's gateway, when `docker network inspect bridge` reports one;
2. docker0's IPv4 address, read from the kernel (the bridge the engine made, whatever it recorded);
3. the gateway of a network made for this purpose with a fixed subnet (the host's end of its bridge).

Standard library only: `.ci/run` prints the choice before any virtual environment exists
(`python3 tests/cluster_address.py`).
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import socket
import struct
import subprocess
from collections.abc import Callable
from typing import Any

# Made by case 3 only, and kept (the next run finds it): a subnet unlikely to clash with the engine's own pools.
TEST_NETWORK = "helical-e2e-cluster"
TEST_SUBNET, TEST_GATEWAY = "172.31.250.0/24", "172.31.250.1"
SIOCGIFADDR = 0x8915


class NoClusterAddressError(RuntimeError):
    """None of the three ways found an address of this host that a second compose project can reach."""


def bridge_gateway(ipam: dict[str, Any] | None) -> str | None:
    """The first IPv4 gateway of a network's IPAM section (`docker network inspect`'s .IPAM), if it has one."""
    for config in (ipam or {}).get("Config") or []:
        gateway = (config or {}).get("Gateway") or ""
        if gateway and ipaddress.ip_address(gateway).version == 4:
            return gateway
    return None


def interface_ipv4(name: str) -> str | None:
    """An interface's IPv4 address from the kernel (SIOCGIFADDR), or None when it has none or does not exist."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            answer = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
        except OSError:
            return None
    return socket.inet_ntoa(answer[20:24])


def docker_json(*args: str) -> Any:
    done = subprocess.run(["docker", *args], capture_output=True, text=True)
    return json.loads(done.stdout) if done.returncode == 0 and done.stdout.strip() else None


def inspect_ipam(network: str) -> dict[str, Any] | None:
    found = docker_json("network", "inspect", network)
    return found[0].get("IPAM") if found else None


def ensure_test_network() -> dict[str, Any] | None:
    """The IPAM section of TEST_NETWORK, created with its fixed subnet and gateway when it does not exist."""
    if (ipam := inspect_ipam(TEST_NETWORK)) is None:
        subprocess.run(["docker", "network", "create", "--subnet", TEST_SUBNET, "--gateway", TEST_GATEWAY,
                        TEST_NETWORK], capture_output=True, text=True)
        ipam = inspect_ipam(TEST_NETWORK)
    return ipam


def choose_cluster_address(bridge_ipam: Callable[[], dict[str, Any] | None] = lambda: inspect_ipam("bridge"),
                           docker0: Callable[[], str | None] = lambda: interface_ipv4("docker0"),
                           test_network_ipam: Callable[[], dict[str, Any] | None] = ensure_test_network,
                           ) -> tuple[str, str]:
    """(address, which case found it); the engine's answers are functions so a unit test can play any engine."""
    tried = []
    ipam = bridge_ipam()
    if gateway := bridge_gateway(ipam):
        return gateway, "the default bridge's gateway"
    tried.append(f"docker network inspect bridge reported no IPv4 gateway ({json.dumps(ipam)})")
    if address := docker0():
        return address, "docker0's IPv4 address (the bridge records no gateway)"
    tried.append("the host has no docker0 interface with an IPv4 address")
    if gateway := bridge_gateway(test_network_ipam()):
        return gateway, f"the gateway of the network {TEST_NETWORK} ({TEST_SUBNET}), made for the tests"
    tried.append(f"docker network create --subnet {TEST_SUBNET} --gateway {TEST_GATEWAY} {TEST_NETWORK} failed "
                 "or reported no gateway")
    raise NoClusterAddressError("no address for the test stack's cluster ports: " + "; ".join(tried) +
                                ". Set E2E_CLUSTER_ADDRESS to an address of this host that containers reach.")


def address_for_tests(environ: dict[str, str]) -> tuple[str, str]:
    """E2E_CLUSTER_ADDRESS when set (a machine where none of the three works), else the detected one."""
    if given := environ.get("E2E_CLUSTER_ADDRESS"):
        return given, "E2E_CLUSTER_ADDRESS"
    return choose_cluster_address()


if __name__ == "__main__":
    import os

    chosen, case = address_for_tests(dict(os.environ))
    print(f"cluster address for the tests: {chosen} ({case})")
