"""The OpenAI and Anthropic wire formats of the compatible endpoints (/v1/...)."""
