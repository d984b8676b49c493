"""The test stack's cluster address (issue 19) for the three answers an engine may give."""

from __future__ import annotations

import pytest

from tests.cluster_address import NoClusterAddressError, address_for_tests, bridge_gateway, choose_cluster_address

WITH_GATEWAY = {"Driver": "default", "Config": [{"Subnet": "172.17.0.0/16", "Gateway": "172.17.0.1"}]}
# Debian's docker.io 20.10.24 under a plain dockerd: the subnet only.
WITHOUT_GATEWAY = {"Driver": "default", "Options": None, "Config": [{"Subnet": "172.17.0.0/16"}]}
TEST_NETWORK = {"Config": [{"Subnet": "172.31.250.0/24", "Gateway": "172.31.250.1"}]}


def never(what: str):
    def call():
        raise AssertionError(f"{what} asked although an earlier answer sufficed")
    return call


def test_the_bridge_gateway_when_the_engine_reports_it():
    assert choose_cluster_address(lambda: WITH_GATEWAY, never("docker0"), never("test network")) == (
        "172.17.0.1", "the default bridge's gateway")


def test_docker0_when_the_bridge_records_no_gateway():
    address, case = choose_cluster_address(lambda: WITHOUT_GATEWAY, lambda: "172.17.0.1", never("test network"))
    assert address == "172.17.0.1" and "docker0" in case


def test_a_network_of_its_own_when_docker0_is_missing_too():
    address, case = choose_cluster_address(lambda: WITHOUT_GATEWAY, lambda: None, lambda: TEST_NETWORK)
    assert address == "172.31.250.1" and "helical-e2e-cluster" in case


def test_nothing_found_names_everything_tried():
    with pytest.raises(NoClusterAddressError) as failed:
        choose_cluster_address(lambda: None, lambda: None, lambda: None)
    message = str(failed.value)
    assert "no IPv4 gateway" in message and "no docker0" in message and "docker network create" in message
    assert "E2E_CLUSTER_ADDRESS" in message


def test_ipv6_gateways_are_skipped_and_an_override_wins():
    assert bridge_gateway({"Config": [{"Gateway": "fd00::1"}, {"Gateway": "10.0.0.1"}]}) == "10.0.0.1"
    assert bridge_gateway({"Config": None}) is None
    assert address_for_tests({"E2E_CLUSTER_ADDRESS": "192.0.2.7"}) == ("192.0.2.7", "E2E_CLUSTER_ADDRESS")
