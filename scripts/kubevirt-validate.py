#!/usr/bin/env python3
"""Validate KubeVirt objects strictly against KubeVirt's own OpenAPI definitions.

usage: kubevirt-validate.py SWAGGER.json FILE.json...

Each FILE holds one object (or a v1 List of objects) as `qemuctl export kubevirt -o json`
prints it. Each object is checked against the definition of its kind in SWAGGER's
`definitions` (v1.VirtualMachine for kind VirtualMachine) as a draft-4 JSON Schema, with
`additionalProperties: false` on every definition that lists properties, so an unknown
field is an error (as `kubectl apply --validate=strict` would find). Then the rules of
KubeVirt's admission webhook that the schema does not carry: runStrategy's values, every
disk names an existing volume and every interface an existing network, names unique,
Kubernetes name and label syntax, one pod network, boot orders positive and unique.

Prints one line per problem (FILE: where: what) and exits 1 if there is any, else prints
`ok: N objects` and exits 0. Used by the tests (Tests/ReconcileTests/KubeVirtExportTests.swift).
"""
import json
import re
import sys

from jsonschema import Draft4Validator

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
RUN_STRATEGIES = {"Always", "RerunOnFailure", "Manual", "Halted", "Once", "WaitAsReceiver"}


def quantity(text):
    """Bytes of a Kubernetes quantity with a binary or decimal suffix, or None."""
    text = str(text)
    for suffix, unit in (("Ki", 1 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30), ("Ti", 1 << 40),
                         ("k", 10**3), ("M", 10**6), ("G", 10**9), ("T", 10**12)):
        if text.endswith(suffix):
            return int(text[:-len(suffix)]) * unit if text[:-len(suffix)].isdigit() else None
    return int(text) if text.isdigit() else None


def strict_definitions(definitions):
    for definition in definitions.values():
        if "properties" in definition and "additionalProperties" not in definition:
            definition["additionalProperties"] = False
    return definitions


def is_subdomain(name):
    return 0 < len(name) <= 253 and all(DNS_LABEL.match(part) for part in name.split("."))


def label_problems(labels, where):
    out = []
    for key, value in (labels or {}).items():
        prefix, _, name = key.rpartition("/")
        if (prefix and not is_subdomain(prefix)) or not LABEL_NAME.match(name):
            out.append(f"{where}: label key {key!r} is not a Kubernetes label key")
        if not isinstance(value, str) or not LABEL_VALUE.match(value):
            out.append(f"{where}: label value {value!r} of {key!r} is not a Kubernetes label value")
    return out


def unique(names, what, where):
    seen, out = set(), []
    for n in names:
        if n in seen:
            out.append(f"{where}: {what} {n!r} is named twice")
        seen.add(n)
    return out


def webhook_problems(vm):
    """The admission webhook's checks that the schema does not express."""
    out = []
    meta = vm.get("metadata", {})
    if not is_subdomain(meta.get("name", "")):
        out.append(f"metadata.name: {meta.get('name')!r} is not a DNS subdomain")
    if "namespace" in meta and not DNS_LABEL.match(meta["namespace"]):
        out.append(f"metadata.namespace: {meta['namespace']!r} is not a DNS label")
    out += label_problems(meta.get("labels"), "metadata.labels")
    spec = vm["spec"]
    if spec.get("runStrategy") not in RUN_STRATEGIES:
        out.append(f"spec.runStrategy: {spec.get('runStrategy')!r} is not one of {sorted(RUN_STRATEGIES)}")
    if "running" in spec and "runStrategy" in spec:
        out.append("spec: running and runStrategy are mutually exclusive")
    dv_names = [t["metadata"]["name"] for t in spec.get("dataVolumeTemplates", [])]
    out += unique(dv_names, "dataVolumeTemplate", "spec.dataVolumeTemplates")
    for name in dv_names:
        if not is_subdomain(name):
            out.append(f"spec.dataVolumeTemplates: {name!r} is not a DNS subdomain")
    for i, t in enumerate(spec.get("dataVolumeTemplates", [])):
        storage = t["spec"].get("storage") or t["spec"].get("pvc") or {}
        if "storage" not in storage.get("resources", {}).get("requests", {}) and "sourceRef" not in t["spec"]:
            out.append(f"spec.dataVolumeTemplates[{i}]: no storage size requested")
    template = spec["template"]
    out += label_problems(template.get("metadata", {}).get("labels"), "spec.template.metadata.labels")
    tspec = template["spec"]
    devices = tspec["domain"]["devices"]
    volumes = tspec.get("volumes", [])
    networks = tspec.get("networks", [])
    disks = devices.get("disks", [])
    interfaces = devices.get("interfaces", [])
    volume_names = [v["name"] for v in volumes]
    network_names = [n["name"] for n in networks]
    out += unique(volume_names, "volume", "spec.template.spec.volumes")
    out += unique(network_names, "network", "spec.template.spec.networks")
    out += unique([d["name"] for d in disks], "disk", "spec.template.spec.domain.devices.disks")
    out += unique([i["name"] for i in interfaces], "interface", "spec.template.spec.domain.devices.interfaces")
    for n in volume_names + network_names:
        if not DNS_LABEL.match(n):
            out.append(f"spec.template.spec: volume or network name {n!r} is not a DNS label")
    for k, d in enumerate(disks):
        if d["name"] not in volume_names:
            out.append(f"spec.template.spec.domain.devices.disks[{k}]: disk {d['name']!r} names no volume")
    for k, v in enumerate(volumes):
        if "dataVolume" in v and v["dataVolume"]["name"] not in dv_names:
            out.append(f"spec.template.spec.volumes[{k}]: DataVolume {v['dataVolume']['name']!r} has no dataVolumeTemplate")
        if "persistentVolumeClaim" in v and not is_subdomain(v["persistentVolumeClaim"]["claimName"]):
            out.append(f"spec.template.spec.volumes[{k}]: claim name is not a DNS subdomain")
    pods = [n["name"] for n in networks if "pod" in n]
    if len(pods) > 1:
        out.append("spec.template.spec.networks: more than one pod network")
    for k, i in enumerate(interfaces):
        if i["name"] not in network_names:
            out.append(f"spec.template.spec.domain.devices.interfaces[{k}]: interface {i['name']!r} names no network")
        if "masquerade" in i and i["name"] not in pods:
            out.append(f"spec.template.spec.domain.devices.interfaces[{k}]: masquerade needs the pod network")
        if "macAddress" in i and not MAC.match(i["macAddress"]):
            out.append(f"spec.template.spec.domain.devices.interfaces[{k}]: bad MAC {i['macAddress']!r}")
    orders = [x["bootOrder"] for x in disks + interfaces if "bootOrder" in x]
    if any(o < 1 for o in orders):
        out.append("spec.template.spec.domain.devices: a bootOrder is below 1")
    out += unique(orders, "bootOrder", "spec.template.spec.domain.devices")
    memory = tspec["domain"].get("memory", {})
    if "maxGuest" in memory:
        # memory.ValidateLiveUpdateMemory, called by the VM admitter when maxGuest is set.
        guest, most = quantity(memory.get("guest", "0")), quantity(memory["maxGuest"])
        block = 2 << 20
        if guest is None or most is None or guest > most:
            out.append("spec.template.spec.domain.memory: guest above maxGuest (or not a quantity)")
        elif guest % block or most % block:
            out.append("spec.template.spec.domain.memory: guest and maxGuest must be 2Mi aligned")
        elif guest < 1 << 30:
            out.append("spec.template.spec.domain.memory: memory hot-plug needs at least 1Gi of guest memory")
        if tspec.get("architecture", "amd64") != "amd64":
            out.append("spec.template.spec.domain.memory: memory hot-plug is only available for amd64 VMs")
    cpu = tspec["domain"].get("cpu", {})
    if cpu.get("maxSockets", 0) and cpu["maxSockets"] < cpu.get("sockets", 1):
        out.append("spec.template.spec.domain.cpu: maxSockets below sockets")
    return out


def main():
    if len(sys.argv) < 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    with open(sys.argv[1]) as f:
        definitions = strict_definitions(json.load(f)["definitions"])
    problems, count = [], 0
    for path in sys.argv[2:]:
        with open(path) as f:
            document = json.load(f)
        objects = document["items"] if document.get("kind") == "List" else [document]
        for n, obj in enumerate(objects):
            count += 1
            where = path if len(objects) == 1 else f"{path}[{n}]"
            kind = obj.get("kind")
            if obj.get("apiVersion") != "kubevirt.io/v1" or f"v1.{kind}" not in definitions:
                problems.append(f"{where}: apiVersion/kind {obj.get('apiVersion')}/{kind} is not a kubevirt.io/v1 kind")
                continue
            schema = {"$ref": f"#/definitions/v1.{kind}", "definitions": definitions}
            for error in Draft4Validator(schema).iter_errors(obj):
                at = "/".join(str(p) for p in error.absolute_path) or "(root)"
                problems.append(f"{where}: {at}: {error.message}")
            if kind == "VirtualMachine":
                problems += [f"{where}: {p}" for p in webhook_problems(obj)]
    for p in problems:
        print(p)
    if problems:
        return 1
    print(f"ok: {count} objects")
    return 0


if __name__ == "__main__":
    sys.exit(main())
