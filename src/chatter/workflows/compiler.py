"""Compiling a definition into a LangGraph graph for the one executor. Every node is wrapped
the same way: timed, announced (`NodeStarted` / `NodeFinished` with its calls' usage)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph

from chatter.domain.usage import Usage, total_usage
from chatter.workflows.definition import (
    ConditionalNodeConfig,
    MemoryNodeConfig,
    ModelNodeConfig,
    NodeSpec,
    VariableNodeConfig,
    WorkflowDefinition,
    node_config,
)
from chatter.workflows.events import NodeFinished, NodeStarted
from chatter.workflows.nodes.conditional import pass_through, router
from chatter.workflows.nodes.memory import memory_node
from chatter.workflows.nodes.model import NodeFunction, model_node
from chatter.workflows.nodes.tools import tools_node
from chatter.workflows.nodes.variable import variable_node
from chatter.workflows.state import WorkflowState


@dataclass(frozen=True)
class CompiledWorkflow:
    name: str
    graph: Any  # a compiled LangGraph StateGraph
    # The tools its model nodes name; None: every tool of the catalog (a node said null).
    tool_names: frozenset[str] | None
    max_iterations: int | None  # None: the server's default
    # Model calls of one pass through the graph (model nodes and summarising memory nodes):
    # what a budget reserves for, per tool round.
    model_calls: int = 1
    # A cycle that no tool round bounds makes up to one call per node step (the iteration
    # limit); and the largest max_tokens a node sets bounds each call's output.
    cyclic: bool = False
    max_node_output: int | None = None


def compile_definition(definition: WorkflowDefinition) -> CompiledWorkflow:
    """Compile a validated definition (see validation.validate)."""
    graph = StateGraph(WorkflowState)
    for node in definition.nodes:
        action: Any = _timed(node.id, node.type, _function(node))
        graph.add_node(node.id, action)
    graph.add_edge(START, definition.entry)
    types = {node.id: node for node in definition.nodes}
    for node in definition.nodes:
        outgoing = [edge for edge in definition.edges if edge.source == node.id]
        config = node_config(node)
        if isinstance(config, ConditionalNodeConfig):
            labels = {branch.label for branch in config.branches} | {config.default}
            targets = {edge.condition: edge.target for edge in outgoing if edge.condition}
            path_map = {label: targets.get(label, END) for label in labels}
            graph.add_conditional_edges(node.id, router(config), path_map)  # type: ignore[arg-type]
        elif outgoing and types[node.id].type != "end":
            graph.add_edge(node.id, outgoing[0].target)
        else:
            graph.add_edge(node.id, END)
    return CompiledWorkflow(
        name=definition.name,
        graph=graph.compile(),
        tool_names=_tool_names(definition),
        max_iterations=definition.max_iterations,
        model_calls=_model_calls(definition),
        cyclic=_has_cycle(definition),
        max_node_output=max(
            (
                config.max_tokens
                for config in map(node_config, definition.nodes)
                if isinstance(config, ModelNodeConfig) and config.max_tokens is not None
            ),
            default=None,
        ),
    )


def _model_calls(definition: WorkflowDefinition) -> int:
    calls = 0
    for node in definition.nodes:
        config = node_config(node)
        if isinstance(config, ModelNodeConfig) or (
            isinstance(config, MemoryNodeConfig) and config.summarize
        ):
            calls += 1
    return max(calls, 1)


def _has_cycle(definition: WorkflowDefinition) -> bool:
    targets: dict[str, list[str]] = {}
    for edge in definition.edges:
        targets.setdefault(edge.source, []).append(edge.target)
    done: set[str] = set()

    def reaches_itself(node: str, path: set[str]) -> bool:
        if node in path:
            return True
        if node in done:
            return False
        found = any(reaches_itself(target, path | {node}) for target in targets.get(node, []))
        done.add(node)
        return found

    return any(reaches_itself(node.id, set()) for node in definition.nodes)


def _function(node: NodeSpec) -> NodeFunction:
    config = node_config(node)
    if isinstance(config, ModelNodeConfig):
        return model_node(config)
    if isinstance(config, MemoryNodeConfig):
        return memory_node(config)
    if isinstance(config, VariableNodeConfig):
        return variable_node(config)
    if node.type == "tools":
        return tools_node
    return _ignore_config(pass_through)  # conditional (its router decides) and end


def _ignore_config(
    function: Callable[[WorkflowState], Any],
) -> NodeFunction:
    async def run(state: WorkflowState, config: RunnableConfig) -> dict[str, Any]:
        result: dict[str, Any] = await function(state)
        return result

    return run


def _timed(node_id: str, node_type: str, function: NodeFunction) -> NodeFunction:
    async def run(state: WorkflowState, config: RunnableConfig) -> dict[str, Any]:
        emit = get_stream_writer()
        emit(NodeStarted(node_id, node_type))
        started, started_at_ns = time.monotonic(), time.time_ns()

        def finished(status: str, usage: Usage, calls: int) -> NodeFinished:
            duration_ms = int((time.monotonic() - started) * 1000)
            return NodeFinished(
                node_id, node_type, duration_ms, status, usage, calls, started_at_ns
            )

        try:
            update = await function(state, config)
        except BaseException:
            emit(finished("failed", Usage(), 0))
            raise
        records = update.get("usage_records", [])
        emit(finished("succeeded", total_usage([r.usage for r in records]), len(records)))
        return update

    return run


def _tool_names(definition: WorkflowDefinition) -> frozenset[str] | None:
    names: set[str] = set()
    for node in definition.nodes:
        config = node_config(node) if node.type == "model" else None
        if isinstance(config, ModelNodeConfig):
            if config.tools is None:
                return None
            names.update(config.tools)
    return frozenset(names)
