"""docker-compose.yml is a valid Compose file, and its ``cluster`` profile is complete.

No Docker here: the file is validated against the Compose Specification's JSON schema
(the copy ``check-jsonschema`` ships as ``vendor.compose-spec``, the schema ``docker
compose config`` checks too), then for what the schema cannot see (references between
services and volumes, the profile's shape).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
from ruamel.yaml import YAML

COMPOSE = Path(__file__).resolve().parent.parent / "docker-compose.yml"


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = YAML(typ="safe").load(COMPOSE.read_text())
    return loaded


def _schema() -> dict[str, Any]:
    vendored = resources.files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads(vendored.joinpath("compose-spec.json").read_text())
    return schema


def test_the_file_follows_the_compose_spec() -> None:
    validator = jsonschema.Draft7Validator(_schema())
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(_compose())]
    assert errors == []


def test_references_resolve() -> None:
    compose = _compose()
    services = compose["services"]
    for name, service in services.items():
        for needed in service.get("depends_on", {}):
            assert needed in services, (name, needed)
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in compose["volumes"], (name, source)


def test_the_cluster_profile_has_six_nodes_and_an_init_job() -> None:
    services = _compose()["services"]
    in_profile = {n: s for n, s in services.items() if "cluster" in s.get("profiles", [])}
    nodes = {n: s for n, s in in_profile.items() if "--cluster-enabled" in s["command"]}
    assert len(nodes) == 6
    ports = sorted(s["command"][s["command"].index("--port") + 1] for s in nodes.values())
    assert ports == [str(p) for p in range(7001, 7007)]
    for node in nodes.values():
        settings = dict(zip(node["command"][1::2], node["command"][2::2], strict=False))
        assert settings["--maxmemory-policy"] == "noeviction"
        assert settings["--appendonly"] == "yes"
        assert settings["--stream-node-max-bytes"] == "512"
    (init,) = set(in_profile) - set(nodes)
    script = " ".join(in_profile[init]["command"])
    assert "redis-cli --cluster create" in script
    assert "--cluster-replicas 1 --cluster-yes" in script
    assert all(f"127.0.0.1:{port}" in script for port in ports)
    assert set(in_profile[init]["depends_on"]) == set(nodes)
    # the default services start without the profile
    assert {"redis", "demo"} <= {n for n, s in services.items() if not s.get("profiles")}
