"""Validating a definition: every problem at once, each with its location."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from chatter.errors import ChatterError
from chatter.workflows.definition import (
    NODE_TYPES,
    ConditionalNodeConfig,
    WorkflowDefinition,
)

# LangGraph refuses node names that are also state keys.
RESERVED_IDS = frozenset({"messages", "usage_records", "tool_records", "model_calls", "variables"})
# Raises BadRequest / UnknownModel / ProviderNotConfigured for an unusable provider/model.
ModelCheck = Callable[[str | None, str | None], object]


@dataclass(frozen=True)
class Problem:
    location: str  # e.g. "nodes[2].config.temperature", "edges[1].target", "entry"
    code: str
    message: str
    node_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "location": self.location,
            "node_id": self.node_id,
            "code": self.code,
            "message": self.message,
        }


def validate(
    definition: WorkflowDefinition, *, check_model: ModelCheck, tool_names: Collection[str]
) -> list[Problem]:
    problems: list[Problem] = []
    configs = _configs(definition, problems)
    _edges(definition, configs, problems)
    _graph(definition, configs, problems)
    _references(definition, check_model, set(tool_names), problems)
    return problems


def _configs(definition: WorkflowDefinition, problems: list[Problem]) -> dict[str, BaseModel]:
    """Each node's typed config (nodes with a bad type or config are left out)."""
    configs: dict[str, BaseModel] = {}
    seen: set[str] = set()
    for index, node in enumerate(definition.nodes):
        where = f"nodes[{index}]"
        if node.id in seen:
            problems.append(
                Problem(
                    f"{where}.id", "duplicate_id", f"node id '{node.id}' is used twice", node.id
                )
            )
        seen.add(node.id)
        if node.id in RESERVED_IDS:
            message = f"'{node.id}' is reserved (a name in the run's state)"
            problems.append(Problem(f"{where}.id", "reserved_id", message, node.id))
        model = NODE_TYPES.get(node.type)
        if model is None:
            known = ", ".join(NODE_TYPES)
            message = f"unknown node type '{node.type}' (known: {known})"
            problems.append(Problem(f"{where}.type", "unknown_node_type", message, node.id))
            continue
        try:
            configs.setdefault(node.id, model.model_validate(node.config))
        except ValidationError as exc:
            for error in exc.errors():
                path = "".join(
                    f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]
                )
                problems.append(
                    Problem(f"{where}.config{path}", "invalid_config", error["msg"], node.id)
                )
    return configs


def _edges(
    definition: WorkflowDefinition, configs: dict[str, BaseModel], problems: list[Problem]
) -> None:
    types: dict[str, str] = {}
    for node in definition.nodes:
        types.setdefault(node.id, node.type)  # a duplicate id is reported once, by _configs
    unconditional: dict[str, int] = {}
    labels: set[tuple[str, str]] = set()
    for index, edge in enumerate(definition.edges):
        where = f"edges[{index}]"
        for end, name in (("source", edge.source), ("target", edge.target)):
            if name not in types:
                message = f"edge {end} '{name}' is not a node"
                problems.append(Problem(f"{where}.{end}", f"unknown_edge_{end}", message))
        kind = types.get(edge.source)
        if kind is None:
            continue
        if kind == "end":
            message = "an end node has no outgoing edges"
            problems.append(Problem(where, "edge_from_end", message, edge.source))
        elif kind == "conditional":
            _conditional_edge(where, edge.source, edge.condition, configs, labels, problems)
        elif edge.condition is not None:
            message = "only edges leaving a conditional node carry a condition"
            problems.append(
                Problem(f"{where}.condition", "unexpected_condition", message, edge.source)
            )
        else:
            unconditional[edge.source] = unconditional.get(edge.source, 0) + 1
            if unconditional[edge.source] == 2:
                message = "a node other than a conditional has at most one outgoing edge"
                problems.append(Problem(where, "multiple_edges", message, edge.source))


def _conditional_edge(
    where: str,
    source: str,
    condition: str | None,
    configs: dict[str, BaseModel],
    labels: set[tuple[str, str]],
    problems: list[Problem],
) -> None:
    if condition is None:
        message = "an edge leaving a conditional node names its branch in `condition`"
        problems.append(Problem(f"{where}.condition", "missing_condition", message, source))
        return
    config = configs.get(source)
    if isinstance(config, ConditionalNodeConfig):
        known = {branch.label for branch in config.branches} | {config.default}
        if condition not in known:
            message = f"'{condition}' is not a branch of '{source}' (its: {sorted(known)})"
            problems.append(Problem(f"{where}.condition", "unknown_condition", message, source))
    if (source, condition) in labels:
        message = f"branch '{condition}' of '{source}' has two edges"
        problems.append(Problem(f"{where}.condition", "duplicate_condition", message, source))
    labels.add((source, condition))


def successors(definition: WorkflowDefinition) -> dict[str, list[str]]:
    ids = {node.id for node in definition.nodes}
    out: dict[str, list[str]] = {node_id: [] for node_id in ids}
    for edge in definition.edges:
        if edge.source in ids and edge.target in ids:
            out[edge.source].append(edge.target)
    return out


def _terminal(definition: WorkflowDefinition, configs: dict[str, BaseModel]) -> set[str]:
    """Nodes after which a run can end: end nodes, nodes without outgoing edges, and
    conditionals with a branch that has no edge."""
    out = successors(definition)
    terminal = set()
    for node in definition.nodes:
        config = configs.get(node.id)
        labelled = {e.condition for e in definition.edges if e.source == node.id}
        open_branch = (
            isinstance(config, ConditionalNodeConfig)
            and not ({b.label for b in config.branches} | {config.default}) <= labelled
        )
        if node.type == "end" or not out[node.id] or open_branch:
            terminal.add(node.id)
    return terminal


def _reach(start: Collection[str], edges: dict[str, list[str]]) -> set[str]:
    seen = set(start)
    pending = list(start)
    while pending:
        for following in edges.get(pending.pop(), []):
            if following not in seen:
                seen.add(following)
                pending.append(following)
    return seen


def _graph(
    definition: WorkflowDefinition, configs: dict[str, BaseModel], problems: list[Problem]
) -> None:
    index_of = {node.id: i for i, node in reversed(list(enumerate(definition.nodes)))}
    if definition.entry not in index_of:
        message = f"entry '{definition.entry}' is not a node"
        problems.append(Problem("entry", "bad_entry", message))
        return
    out = successors(definition)
    reachable = _reach([definition.entry], out)
    for node in definition.nodes:
        if node.id not in reachable:
            where = f"nodes[{index_of[node.id]}]"
            message = f"node '{node.id}' cannot be reached from the entry"
            problems.append(Problem(where, "unreachable_node", message, node.id))
    if definition.max_iterations is not None:
        return  # the explicit limit ends any cycle
    backwards: dict[str, list[str]] = {node_id: [] for node_id in out}
    for source, targets in out.items():
        for target in targets:
            backwards[target].append(source)
    can_end = _reach(_terminal(definition, configs), backwards)
    for node_id in sorted(reachable - can_end, key=index_of.__getitem__):
        message = (
            f"node '{node_id}' is in a cycle with no exit and the definition sets no max_iterations"
        )
        problems.append(
            Problem(f"nodes[{index_of[node_id]}]", "cycle_without_exit", message, node_id)
        )


def _references(
    definition: WorkflowDefinition,
    check_model: ModelCheck,
    tool_names: set[str],
    problems: list[Problem],
) -> None:
    """Providers, models and tools, read from the raw config: a node whose config has
    another problem still gets these checked."""
    for index, node in enumerate(definition.nodes):
        if node.type not in ("model", "memory"):
            continue
        raw = node.config
        where = f"nodes[{index}].config"
        provider, model = _text(raw.get("provider")), _text(raw.get("model"))
        if (provider or model) and (node.type == "model" or raw.get("summarize") is True):
            try:
                check_model(provider, model)
            except ChatterError as exc:
                field = "model" if exc.code == "unknown_model" else "provider"
                code = "unknown_model" if field == "model" else "unknown_provider"
                problems.append(Problem(f"{where}.{field}", code, exc.message, node.id))
        tools = raw.get("tools") if node.type == "model" else None
        for position, name in enumerate(tools if isinstance(tools, list) else []):
            if isinstance(name, str) and name not in tool_names:
                message = f"unknown tool '{name}' (known: {sorted(tool_names)})"
                problems.append(
                    Problem(f"{where}.tools[{position}]", "unknown_tool", message, node.id)
                )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
