"""The deploy manifests: each agent reads its own node's token; nothing shares one token."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).parents[2]


def _daemonset() -> dict:
    docs = list(yaml.safe_load_all((ROOT / "deploy" / "kubernetes" / "daemonset.yaml").read_text()))
    return next(d for d in docs if d and d["kind"] == "DaemonSet")


def test_daemonset_reads_a_per_node_token_file() -> None:
    pod = _daemonset()["spec"]["template"]["spec"]
    (agent,) = pod["containers"]
    env = {e["name"]: e for e in agent["env"]}
    # The node name comes from the downward API, the token file is named after it.
    assert env["GPULEDGER_AGENT_NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert "--token-file=/etc/gpuledger/tokens/$(GPULEDGER_AGENT_NODE_NAME)" in agent["args"]
    assert "GPULEDGER_AGENT_TOKEN" not in env  # one shared token could only ever write one node
    mounts = {m["name"]: m for m in agent["volumeMounts"]}
    assert mounts["tokens"]["mountPath"] == "/etc/gpuledger/tokens"
    assert mounts["tokens"]["readOnly"] is True
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["tokens"]["secret"]["secretName"] == "gpuledger-agent-tokens"


def test_daemonset_sees_host_processes() -> None:
    pod = _daemonset()["spec"]["template"]["spec"]
    assert pod["hostPID"] is True
    (agent,) = pod["containers"]
    assert "--proc-root=/host/proc" in agent["args"]


def test_every_arg_is_an_agent_option() -> None:
    from agent.cli import build_parser

    (agent,) = _daemonset()["spec"]["template"]["spec"]["containers"]
    args = [a.replace("$(GPULEDGER_AGENT_NODE_NAME)", "node-1") for a in agent["args"][1:]]
    build_parser().parse_args(args)  # exits on an unknown option
