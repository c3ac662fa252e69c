"""MCP tool server bodies."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from chatter.api.schemas.common import NUMBER_ONLY, RequestModel
from chatter.workflows.tools.naming import MAX_SERVER_NAME, is_server_name

HEADER_NAME = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$"
HEADER_VALUE = r"^[\x20-\x7e]{0,4096}$"  # printable ASCII: what every HTTP stack accepts
Argument = Annotated[str, Field(max_length=1024)]
URL = re.compile(r"^https?://[^\s/?#]+[^\s]*$")


class ToolServerIn(RequestModel):
    name: str = Field(
        max_length=MAX_SERVER_NAME,
        description="Unique. Lower-case letters, digits, `-` and `_` (no `__`, not ending "
        "in `_`); its tools are named `<name>__<tool>`.",
    )
    transport: Literal["streamable_http", "stdio"]
    url: str | None = Field(
        default=None,
        max_length=2048,
        description="streamable_http: the server's MCP endpoint, an http(s) URL.",
    )
    command: str | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        description="stdio: the command to run; must be in CHATTER_TOOLS__STDIO_ALLOWED_COMMANDS.",
    )
    args: list[Argument] = Field(
        default_factory=list, max_length=64, description="stdio: the command's arguments."
    )
    headers: dict[
        Annotated[str, Field(pattern=HEADER_NAME)], Annotated[str, Field(pattern=HEADER_VALUE)]
    ] = Field(
        default_factory=dict,
        max_length=32,
        description="streamable_http: headers sent with every request (e.g. Authorization). "
        "Their values are never shown again.",
    )
    timeout_s: Annotated[float | None, Field(gt=0, le=600), NUMBER_ONLY] = Field(
        default=None, description="HTTP timeout for this server (default CHATTER_TOOLS__TIMEOUT_S)."
    )

    @field_validator("name")
    @classmethod
    def _server_name(cls, name: str) -> str:
        if not is_server_name(name):
            raise ValueError(
                "a server name is 1-32 of a-z 0-9 - _, starts with a letter or digit, "
                "does not end with '_' and holds no '__'"
            )
        return name

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None and URL.fullmatch(url) is None:
            raise ValueError("the url must be http:// or https:// with a host")
        return url

    @model_validator(mode="after")
    def _fits_transport(self) -> ToolServerIn:
        if self.transport == "streamable_http":
            if self.url is None:
                raise ValueError("streamable_http needs a url")
            if self.command is not None or self.args:
                raise ValueError("streamable_http takes no command or args")
        else:
            if self.command is None:
                raise ValueError("stdio needs a command")
            if self.url is not None or self.headers:
                raise ValueError("stdio takes no url or headers")
        return self


class ToolServerOut(BaseModel):
    name: str
    transport: Literal["streamable_http", "stdio"]
    url: str | None
    command: str | None
    args: list[str]
    header_names: list[str] = Field(description="The headers sent (their values are secret).")
    timeout_s: float | None
    created_at: datetime
    status: Literal["available", "unavailable"] = Field(
        description="Whether the server listed its tools when last asked."
    )
    tools: list[str] = Field(description="Its tools' names, as workflows name them.")
    error: str | None = Field(description="Why it is unavailable.")
    checked_at: datetime = Field(description="When its tools were last listed.")
