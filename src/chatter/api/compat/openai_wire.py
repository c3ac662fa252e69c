"""OpenAI Chat Completions bodies: requests as accepted, responses as sent, errors."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from chatter.api.schemas.common import NUMBER_ONLY, RequestModel

Text = Annotated[str, Field(max_length=1_000_000)]
TOOL_NAME = r"^[a-zA-Z0-9_-]+$"


class ContentPartIn(RequestModel):
    type: str = Field(max_length=64, description='Only "text" parts are accepted (else a 400).')
    text: Text | None = None


Content = Text | list[ContentPartIn]


class FunctionCallIn(RequestModel):
    name: str = Field(min_length=1, max_length=128)
    arguments: Text = Field(description="The arguments as a JSON object, in a string.")


class ToolCallIn(RequestModel):
    id: str = Field(min_length=1, max_length=128)
    type: Literal["function"] = "function"
    function: FunctionCallIn


class SystemMessageIn(RequestModel):
    role: Literal["system", "developer"]
    content: Content


class UserMessageIn(RequestModel):
    role: Literal["user"]
    content: Content


class AssistantMessageIn(RequestModel):
    role: Literal["assistant"]
    content: Content | None = None
    tool_calls: list[ToolCallIn] | None = None


class ToolMessageIn(RequestModel):
    role: Literal["tool"]
    content: Content
    tool_call_id: str = Field(min_length=1, max_length=128)


MessageIn = Annotated[
    SystemMessageIn | UserMessageIn | AssistantMessageIn | ToolMessageIn,
    Field(discriminator="role"),
]


class FunctionIn(RequestModel):
    name: str = Field(min_length=1, max_length=128, pattern=TOOL_NAME)
    description: str | None = Field(default=None, max_length=100_000)
    parameters: dict[str, Any] | None = None


class FunctionToolIn(RequestModel):
    type: Literal["function"]
    function: FunctionIn


class NamedFunctionIn(RequestModel):
    name: str = Field(min_length=1, max_length=128)


class NamedToolChoiceIn(RequestModel):
    type: Literal["function"]
    function: NamedFunctionIn


class StreamOptionsIn(RequestModel):
    include_usage: bool = False


class ChatCompletionIn(RequestModel):
    """OpenAI's Chat Completions request. Fields Chatter cannot honour (n > 1, logprobs,
    response_format other than text, penalties, audio, ...) are a 400; other unknown fields
    are ignored."""

    model: str = Field(
        min_length=1,
        max_length=256,
        description="'provider/model' (GET /v1/models) or a configured alias; else a 404.",
        examples=["demo/demo-1"],
    )
    messages: list[MessageIn] = Field(min_length=1, max_length=10_000)
    stream: bool = False
    stream_options: StreamOptionsIn | None = None
    tools: list[FunctionToolIn] | None = Field(default=None, max_length=128)
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoiceIn | None = None
    temperature: Annotated[float, Field(ge=0, le=2), NUMBER_ONLY] | None = None
    top_p: Annotated[float, Field(ge=0, le=1), NUMBER_ONLY] | None = None
    max_tokens: Annotated[int, Field(ge=1, le=1_000_000), NUMBER_ONLY] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1, le=1_000_000), NUMBER_ONLY] | None = None
    stop: str | list[Annotated[str, Field(min_length=1)]] | None = Field(default=None, max_length=4)
    n: Annotated[int, Field(ge=1, le=128), NUMBER_ONLY] | None = Field(
        default=None, description="Only 1 (one choice per call); more is a 400."
    )
    # Accepted only at their defaults: each would change the answer in ways Chatter does
    # not support (a 400 says which).
    logprobs: bool | None = None
    top_logprobs: int | None = None
    response_format: dict[str, Any] | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    logit_bias: dict[str, Any] | None = None
    functions: list[Any] | None = None
    function_call: Any = None
    audio: Any = None
    modalities: list[str] | None = None
    prediction: Any = None
    web_search_options: Any = None


# Responses


class OpenAIFunctionCallOut(BaseModel):
    name: str
    arguments: str


class OpenAIToolCallOut(BaseModel):
    id: str
    type: Literal["function"] = "function"
    function: OpenAIFunctionCallOut


class AssistantMessageOut(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    refusal: None = None
    tool_calls: list[OpenAIToolCallOut] | None = None


class ChoiceOut(BaseModel):
    index: int
    message: AssistantMessageOut
    finish_reason: str | None
    logprobs: None = None


class PromptTokensDetailsOut(BaseModel):
    cached_tokens: int


class CompletionTokensDetailsOut(BaseModel):
    reasoning_tokens: int


class CompletionUsageOut(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetailsOut
    completion_tokens_details: CompletionTokensDetailsOut


class ChatCompletionOut(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChoiceOut]
    usage: CompletionUsageOut
    system_fingerprint: None = None


class ModelOut(BaseModel):
    id: str = Field(description="'provider/model' or an alias: what `model` accepts.")
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelListOut(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelOut]


class OpenAIErrorDetailOut(BaseModel):
    message: str
    type: str
    code: str | None
    param: str | None = None


class OpenAIErrorOut(BaseModel):
    error: OpenAIErrorDetailOut
