"""Every metric and span attribute name Chatter emits, in one place: a rename is a one-file
change. Span names and `gen_ai.*` attributes follow the OpenTelemetry GenAI semantic
conventions as of v1.41.0 (`gen_ai.provider.name`, not the deprecated `gen_ai.system`);
Chatter's own facts are `chatter.*`."""

from __future__ import annotations

from typing import Final

# --- Prometheus metric names (prometheus_client appends `_total` to counters itself) -------
LLM_REQUESTS: Final = "chatter_llm_requests"
LLM_TOKENS: Final = "chatter_llm_tokens"
LLM_COST: Final = "chatter_llm_cost"
LLM_COST_UNKNOWN: Final = "chatter_llm_cost_unknown"
LLM_LATENCY: Final = "chatter_llm_latency_seconds"
LLM_TTFT: Final = "chatter_llm_time_to_first_token_seconds"
USAGE_ESTIMATED: Final = "chatter_usage_estimated"
WORKFLOW_EXECUTIONS: Final = "chatter_workflow_executions"
WORKFLOW_DURATION: Final = "chatter_workflow_duration_seconds"
TOOL_CALLS: Final = "chatter_tool_calls"
SECURITY_EVENTS: Final = "chatter_security_events"
HTTP_REQUESTS: Final = "chatter_http_requests"
HTTP_DURATION: Final = "chatter_http_request_duration_seconds"
ACTIVE_STREAMS: Final = "chatter_active_streams"
OUTBOX_BACKLOG: Final = "chatter_outbox_backlog"
EXECUTIONS_RECOVERED: Final = "chatter_executions_recovered"
RATE_LIMITED: Final = "chatter_rate_limited"

# Metric label names.
L_PROVIDER: Final = "provider"
L_MODEL: Final = "model"
L_STATUS: Final = "status"
L_KIND: Final = "kind"
L_CURRENCY: Final = "currency"
L_WORKFLOW: Final = "workflow"
L_TOOL: Final = "tool"
L_TYPE: Final = "type"
L_METHOD: Final = "method"
L_ROUTE: Final = "route"
L_SCOPE: Final = "scope"

# The route label of a request no route matched (a 404): never the raw path, whose values
# are unbounded.
UNMATCHED_ROUTE: Final = "unmatched"

# --- Span operation names (gen_ai.operation.name) and span names ----------------------------
OP_INVOKE_WORKFLOW: Final = "invoke_workflow"
OP_CHAT: Final = "chat"
OP_EXECUTE_TOOL: Final = "execute_tool"

# --- GenAI span attributes ------------------------------------------------------------------
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_REQUEST_STREAM: Final = "gen_ai.request.stream"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: Final = "gen_ai.usage.cache_creation.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_CONVERSATION_ID: Final = "gen_ai.conversation.id"
GEN_AI_WORKFLOW_NAME: Final = "gen_ai.workflow.name"
GEN_AI_TOOL_NAME: Final = "gen_ai.tool.name"
GEN_AI_TOOL_CALL_ID: Final = "gen_ai.tool.call.id"
ERROR_TYPE: Final = "error.type"

# --- Chatter's own span attributes ----------------------------------------------------------
CHATTER_COST: Final = "chatter.cost"
CHATTER_COST_KNOWN: Final = "chatter.cost_known"
CHATTER_CURRENCY: Final = "chatter.currency"
CHATTER_PRICE_SOURCE: Final = "chatter.price_source"
CHATTER_USAGE_SOURCE: Final = "chatter.usage_source"
CHATTER_CORRELATION_ID: Final = "chatter.correlation_id"
CHATTER_EXECUTION_ID: Final = "chatter.execution_id"
CHATTER_STATUS: Final = "chatter.status"

# --- HTTP server span attributes (HTTP semantic conventions) --------------------------------
HTTP_REQUEST_METHOD: Final = "http.request.method"
HTTP_ROUTE: Final = "http.route"
HTTP_RESPONSE_STATUS_CODE: Final = "http.response.status_code"
URL_PATH: Final = "url.path"

TRACER_NAME: Final = "chatter"


def chat_span_name(model: str) -> str:
    return f"{OP_CHAT} {model}"


def tool_span_name(tool: str) -> str:
    return f"{OP_EXECUTE_TOOL} {tool}"


def workflow_span_name(workflow: str) -> str:
    return f"{OP_INVOKE_WORKFLOW} {workflow}"
