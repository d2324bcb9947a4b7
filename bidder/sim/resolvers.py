"""The emulator's GraphQL layer: RunPod's schema (schema.graphql) with resolvers over a World.

`build_schema(spot_enabled, spot_fields)` gives the executable schema; with spot off, the spot
mutations and their input types are removed from the document before it is built, so a request
that uses them fails validation (HTTP 400, "Cannot query field ...") as RunPod has announced it
will. With `spot_fields=False` as well, the spot price fields go too (`SPOT_FIELDS`): the next
stage, when the GraphQL API moves on and a price query that asks for them is refused.
Resolvers find the world and whether the caller is authenticated in `info.context`.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

from graphql import (
    DocumentNode,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLSchema,
    ObjectTypeDefinitionNode,
    build_ast_schema,
    parse,
)

from bidder.sim.clock import from_epoch
from bidder.sim.world import BusinessError, SimPod, World
from bidder.units import to_iso

__all__ = ["CREATE_MUTATIONS", "SPOT_FIELDS", "SPOT_ONLY", "UNAUTHENTICATED", "build_schema", "context_for"]

#: Mutations that make a new pod (the `lost_create` fault applies to these).
CREATE_MUTATIONS = frozenset({"podRentInterruptable", "podFindAndDeployOnDemand"})
#: What disappears from the schema when spot is switched off.
SPOT_ONLY = frozenset({"podRentInterruptable", "podBidResume", "PodRentInterruptableInput", "PodBidResumeInput"})
#: The spot price fields, per type, that also disappear when the spot fields are removed.
SPOT_FIELDS: dict[str, frozenset[str]] = {"LowestPrice": frozenset({"minimumBidPrice"}),
                                          "GpuType": frozenset({"secureSpotPrice", "communitySpotPrice"})}
UNAUTHENTICATED = "You must be authenticated to do this: send an API key in the Authorization header."


def context_for(world: World, authenticated: bool) -> dict[str, Any]:
    return {"world": world, "authenticated": authenticated}


def _world(info: GraphQLResolveInfo, *, need_auth: bool = True) -> World:
    if need_auth and not info.context["authenticated"]:
        raise BusinessError(UNAUTHENTICATED, code="UNAUTHENTICATED")
    return info.context["world"]


# -- queries -------------------------------------------------------------------------------------

def _gpu_types(_root: Any, info: GraphQLResolveInfo, input: dict | None = None) -> list[dict]:
    world = _world(info, need_auth=False)
    wanted: set[str] | None = None
    if input:
        ids = [*(input.get("ids") or []), *([input["id"]] if input.get("id") else [])]
        wanted = set(ids) if ids or "id" in input or "ids" in input else None
    out = []
    for gpu in world.gpu_types.values():
        if wanted is not None and gpu.id not in wanted:
            continue
        secure, community = gpu.secure_price is not None, gpu.community_price is not None
        out.append({
            "id": gpu.id, "displayName": gpu.display_name, "manufacturer": gpu.manufacturer,
            "memoryInGb": gpu.memory_in_gb, "secureCloud": secure, "communityCloud": community,
            "securePrice": gpu.secure_price, "communityPrice": gpu.community_price,
            "secureSpotPrice": gpu.secure_spot_price if world.spot_enabled else None,
            "communitySpotPrice": gpu.community_spot_price if world.spot_enabled else None,
            "maxGpuCount": gpu.max_gpu_count,
            "maxGpuCountSecureCloud": gpu.max_gpu_count if secure else 0,
            "maxGpuCountCommunityCloud": gpu.max_gpu_count if community else 0,
        })
    return out


def _lowest_price(gpu: dict, info: GraphQLResolveInfo, input: dict | None = None) -> dict | None:
    world = _world(info, need_auth=False)
    args = input or {}
    return world.lowest_price(gpu["id"], int(args.get("gpuCount") or 1), args.get("secureCloud"))


def _myself(_root: Any, info: GraphQLResolveInfo) -> dict | None:
    if not info.context["authenticated"]:
        return None  # RunPod: no key -> HTTP 200 with myself: null
    world: World = info.context["world"]
    with world.lock:
        pods = [p for p in world.pods.values() if p.desired_status != "TERMINATED"]
        return {"id": world.user_id, "email": "emulator@bidder.invalid",
                "clientBalance": round(world.client_balance(), 6),
                "currentSpendPerHr": round(world.current_spend_per_hr(), 6),
                "spendLimit": int(world.spend_limit), "pods": [_pod_view(world, p) for p in pods]}


def _pod(_root: Any, info: GraphQLResolveInfo, input: dict | None = None) -> dict | None:
    world = _world(info)
    pod = world.get_pod((input or {}).get("podId") or "")
    return None if pod is None else _pod_view(world, pod)


# -- mutations -----------------------------------------------------------------------------------

def _deploy_on_demand(_root: Any, info: GraphQLResolveInfo, input: dict | None = None) -> dict:
    world = _world(info)
    return _pod_view(world, world.deploy_on_demand(input or {}))


def _rent_interruptable(_root: Any, info: GraphQLResolveInfo, input: dict) -> dict:
    world = _world(info)
    return _pod_view(world, world.rent_interruptable(input, input.get("bidPerGpu")))


def _resume(_root: Any, info: GraphQLResolveInfo, input: dict | None = None) -> dict:
    world = _world(info)
    args = input or {}
    return _pod_view(world, world.resume(args["podId"], args.get("gpuCount")))


def _bid_resume(_root: Any, info: GraphQLResolveInfo, input: dict | None = None) -> dict:
    world = _world(info)
    args = input or {}
    return _pod_view(world, world.bid_resume(args["podId"], float(args["bidPerGpu"]), int(args["gpuCount"])))


def _stop(_root: Any, info: GraphQLResolveInfo, input: dict | None = None) -> dict:
    world = _world(info)
    return _pod_view(world, world.stop((input or {}).get("podId") or ""))


def _terminate(_root: Any, info: GraphQLResolveInfo, input: dict | None = None) -> None:
    world = _world(info)
    world.terminate((input or {}).get("podId") or "")


# -- pod rendering -------------------------------------------------------------------------------

def _runtime(world: World, pod: SimPod) -> dict | None:
    if pod.desired_status != "RUNNING" or pod.run_started_s is None:
        return None  # RunPod: runtime is null until the container is up, and after a stop
    ports = []
    for i, item in enumerate(p.strip() for p in (pod.ports or "").split(",")):
        port, _, kind = item.partition("/")
        if port.isdigit():
            public = kind == "tcp"
            ports.append({"ip": f"203.0.113.{10 + i}" if public else f"100.65.0.{10 + i}", "isIpPublic": public,
                          "privatePort": int(port), "publicPort": 40000 + i if public else int(port),
                          "type": kind or "http"})
    return {"uptimeInSeconds": int(world.now_s - pod.run_started_s), "ports": ports,
            "gpus": [{"id": f"GPU-{pod.id[:8]}-{i}", "gpuUtilPercent": 0, "memoryUtilPercent": 0}
                     for i in range(pod.gpu_count)],
            "container": {"cpuPercent": 0, "memoryPercent": 0}}


def _started_at(pod: SimPod) -> str | None:
    # A start time no date can hold (a test poisoning the uptime) prints as null, as RunPod would not crash.
    if pod.run_started_s is None:
        return None
    try:
        return to_iso(from_epoch(pod.run_started_s))
    except (ValueError, OverflowError, OSError):
        return None


def _pod_view(world: World, pod: SimPod) -> dict:
    machine = world.machines[pod.machine_id]
    gpu = world.gpu_types[pod.gpu_type_id]
    uptime = int(world.now_s - pod.run_started_s) if pod.run_started_s is not None else 0
    cost = round(pod.cost_per_hr, 6)
    return {
        "id": pod.id, "name": pod.name, "imageName": pod.image_name, "desiredStatus": pod.desired_status,
        "podType": pod.pod_type, "costPerHr": cost, "adjustedCostPerHr": cost, "gpuCount": pod.gpu_count,
        "vcpuCount": 8 * pod.gpu_count, "memoryInGb": 31 * pod.gpu_count,
        "containerDiskInGb": pod.container_disk_in_gb, "volumeInGb": pod.volume_in_gb,
        "volumeMountPath": pod.volume_mount_path, "ports": pod.ports,
        "env": [f"{k}={v}" for k, v in pod.env], "dockerArgs": pod.docker_args, "templateId": pod.template_id,
        "uptimeSeconds": uptime, "lastStatusChange": pod.last_status_change,
        "lastStartedAt": _started_at(pod),
        "lowestBidPriceToResume": world.lowest_bid_to_resume(pod), "machineId": machine.id,
        "machine": {"id": machine.id, "podHostId": f"{pod.id}-{machine.id[:8]}",
                    "gpuDisplayName": gpu.display_name, "gpuTypeId": gpu.id,
                    "location": machine.data_center_id.split("-")[0], "dataCenterId": machine.data_center_id,
                    "secureCloud": machine.cloud == "SECURE", "gpuAvailable": machine.free},
        "runtime": _runtime(world, pod),
    }


# -- schema --------------------------------------------------------------------------------------

def _without(node: ObjectTypeDefinitionNode, names: frozenset[str]) -> ObjectTypeDefinitionNode:
    kept = tuple(f for f in node.fields if f.name.value not in names)
    return ObjectTypeDefinitionNode(name=node.name, fields=kept, interfaces=node.interfaces,
                                    directives=node.directives, description=node.description)


def _document(spot_enabled: bool, spot_fields: bool = True) -> DocumentNode:
    sdl = resources.files("bidder.sim").joinpath("schema.graphql").read_text(encoding="utf-8")
    document = parse(sdl)
    if spot_enabled:
        return document
    definitions = []
    for node in document.definitions:
        name = getattr(getattr(node, "name", None), "value", None)
        if name in SPOT_ONLY:
            continue
        if isinstance(node, ObjectTypeDefinitionNode) and name == "Mutation":
            node = _without(node, SPOT_ONLY)
        elif isinstance(node, ObjectTypeDefinitionNode) and not spot_fields and name in SPOT_FIELDS:
            node = _without(node, SPOT_FIELDS[name])
        definitions.append(node)
    return DocumentNode(definitions=tuple(definitions))


@functools.cache
def build_schema(spot_enabled: bool = True, spot_fields: bool = True) -> GraphQLSchema:
    """The executable schema (cached: one per spot setting). `spot_fields` counts only with spot off."""
    schema = build_ast_schema(_document(spot_enabled, spot_fields))
    query, mutation = schema.query_type, schema.mutation_type
    assert query is not None and mutation is not None  # the SDL defines both
    query.fields["gpuTypes"].resolve = _gpu_types
    query.fields["myself"].resolve = _myself
    query.fields["pod"].resolve = _pod
    gpu_type = schema.type_map["GpuType"]
    assert isinstance(gpu_type, GraphQLObjectType)
    gpu_type.fields["lowestPrice"].resolve = _lowest_price
    resolvers = {"podFindAndDeployOnDemand": _deploy_on_demand, "podRentInterruptable": _rent_interruptable,
                 "podResume": _resume, "podBidResume": _bid_resume, "podStop": _stop, "podTerminate": _terminate}
    for name, fn in resolvers.items():
        if name in mutation.fields:
            mutation.fields[name].resolve = fn
    return schema
