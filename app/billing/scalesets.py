"""Azure virtual machine scale sets (AKS node pools): which instance a bill row names.

An Azure cost export names the scale set in ``ResourceId`` (``…/virtualMachineScaleSets/<vmss>``)
and the instance, when it does, in ``AdditionalInfo`` (``"VMName": "<vmss>_<instance id>"``). The
agent reports an instance's IMDS ``compute.resourceId``
(``…/virtualMachineScaleSets/<vmss>/virtualMachines/<instance id>``), and Kubernetes names an AKS
node ``<vmss>`` followed by the instance id in base 36, six digits (``aks-gpu-12345678-vmss00000a``
is instance 10). Functions of single values, which the importer runs once per distinct value,
and one of a column (``vm_names``).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

SCALE_SETS = "/providers/microsoft.compute/virtualmachinescalesets/"
INSTANCES = "/virtualmachines/"
AKS_SUFFIX_DIGITS = 6
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_VM_NAME = r'(?i)"vmname"\s*:\s*"(?P<vm_name>[^"\\]*)"'


def scale_set_name(key: str) -> str | None:
    """The scale set's name when ``key`` (a lower-cased resource id) is a scale set itself."""
    head, found, name = key.partition(SCALE_SETS)
    if not found or not head or not name or "/" in name:
        return None
    return name


def split_instance_key(key: str) -> tuple[str, str] | None:
    """(scale set key, instance id) when ``key`` names one instance of a scale set."""
    scale_set, found, instance = key.rpartition(INSTANCES)
    if not found or not instance.isdigit() or scale_set_name(scale_set) is None:
        return None
    return scale_set, instance


def vm_names(additional_info: pa.Array) -> pa.Array:
    """``VMName`` of each row's ``AdditionalInfo`` JSON (Azure also writes ``VmName``), or null.

    A regular expression over the whole column: ``AdditionalInfo`` is nearly unique per row
    (it carries the consumed quantity), so parsing its distinct values would cost a JSON parse
    per row; a VM name has no quotes or backslashes to unescape.
    """
    found = pc.extract_regex(additional_info, _VM_NAME)
    return pc.struct_field(found, [0])


def instance_of_vm_name(scale_set: str, name: str | None) -> str | None:
    """The instance id in ``<vmss>_<instance id>``, if it is an instance of ``scale_set``."""
    if not name:
        return None
    prefix, found, instance = name.lower().rpartition("_")
    if found and prefix == scale_set and instance.isdigit():
        return instance
    return None


def azure_instance_key(resource_id: str | None, vm_name: str | None) -> str | None:
    """The row's resource key: the lower-cased ``ResourceId``, or for a scale-set row whose
    ``AdditionalInfo`` names the instance (``vm_name``), that instance's id
    (``…/virtualmachinescalesets/<vmss>/virtualmachines/<instance id>``)."""
    if not resource_id:
        return None
    key = resource_id.lower()
    name = scale_set_name(key)
    if name is None:
        return key
    instance = instance_of_vm_name(name, vm_name)
    return key if instance is None else f"{key}{INSTANCES}{instance}"


def base36(number: int) -> str:
    digits = ""
    while True:
        number, digit = divmod(number, 36)
        digits = _BASE36[digit] + digits
        if not number:
            return digits


def aks_node_name(scale_set: str, instance: str) -> str:
    """The Kubernetes node name of an AKS scale-set instance: ``<vmss>`` + 6 base-36 digits."""
    return scale_set + base36(int(instance)).rjust(AKS_SUFFIX_DIGITS, "0")


def instance_of_node_name(scale_set: str, name: str) -> str | None:
    """The instance id a node name gives within ``scale_set`` (AKS name or ``VMName`` form)."""
    name = name.lower()
    suffix = name[len(scale_set) :]
    if not name.startswith(scale_set) or not suffix:
        return None
    if len(suffix) == AKS_SUFFIX_DIGITS and all(c in _BASE36 for c in suffix):
        return str(int(suffix, 36))
    if suffix[0] == "_" and suffix[1:].isdigit():
        return suffix[1:]
    return None


def instance_node_names(key: str) -> list[str]:
    """The node names an instance key may go by: ``<vmss>_<id>`` and the AKS node name."""
    parts = split_instance_key(key)
    if parts is None:
        return []
    name = scale_set_name(parts[0]) or ""
    return [f"{name}_{parts[1]}", aks_node_name(name, parts[1])]


class NodeKeys(dict[str, int]):
    """Lower-cased resource keys and node names → node id. A scale-set instance's key that no
    node reports as its instance id also finds the node by its name (AKS or ``VMName`` form),
    so a bill row keeps one key and still matches a node registered under its Kubernetes name."""

    def get(self, key: str, default: Any = None, /) -> Any:
        found = super().get(key)
        if found is None:
            for name in instance_node_names(key):
                found = super().get(name)
                if found is not None:
                    break
        return default if found is None else found
