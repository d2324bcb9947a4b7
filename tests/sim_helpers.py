"""Helpers shared by the emulator's tests: raw GraphQL over httpx (no bidder client needed)."""

from __future__ import annotations

import httpx

from bidder.sim import TEST_API_KEY, Emulator

AUTH = {"Authorization": f"Bearer {TEST_API_KEY}"}
A6000 = "NVIDIA RTX A6000"
POD_FIELDS = """id name desiredStatus podType costPerHr gpuCount lastStatusChange lowestBidPriceToResume
    machineId machine { podHostId gpuDisplayName } runtime { uptimeInSeconds }"""
RENT = f"mutation($input: PodRentInterruptableInput!) {{ podRentInterruptable(input: $input) {{ {POD_FIELDS} }} }}"
DEPLOY = (f"mutation($input: PodFindAndDeployOnDemandInput!) {{ podFindAndDeployOnDemand(input: $input) "
          f"{{ {POD_FIELDS} }} }}")


def gql(emu: Emulator, query: str, variables: dict | None = None, headers: dict | None = AUTH) -> httpx.Response:
    return httpx.post(emu.url, json={"query": query, "variables": variables or {}}, headers=headers, timeout=10)


def rent(emu: Emulator, bid: float, *, count: int = 1, name: str = "job", cloud: str = "COMMUNITY",
         gpu: str = A6000) -> httpx.Response:
    spec = {"gpuTypeId": gpu, "cloudType": cloud, "gpuCount": count, "bidPerGpu": bid, "name": name,
            "imageName": "runpod/pytorch", "ports": "8888/http,22/tcp"}
    return gql(emu, RENT, {"input": spec})
