"""The gateway from an unmodified OpenAI SDK: only base_url and model change.

    make run                       # in another terminal
    .venv/bin/python examples/quickstart.py

The SDK reads OPENAI_BASE_URL and OPENAI_API_KEY from the environment; the
defaults below point at the `make run` demo."""

import os

import openai
from openai import OpenAI

client = OpenAI(
    base_url=os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:10000/v1"),
    api_key=os.environ.get("OPENAI_API_KEY", "sk-demo"),
)

# Every model the key may use, with its category (a gateway extension).
for model in client.models.list():
    print(f"{model.id:32} {model.category}")

# A chat completion, routed by the gateway to the model's backend.
reply = client.chat.completions.create(
    model="llama-3.1-8b-instruct",
    messages=[{"role": "user", "content": "Hello"}],
)
print("chat:", reply.choices[0].message.content)

# Streaming passes through as it arrives.
stream = client.chat.completions.create(
    model="qwen2.5-coder-7b-instruct",
    messages=[{"role": "user", "content": "Hello"}],
    stream=True,
)
print("stream:", "".join(c.choices[0].delta.content or "" for c in stream if c.choices))

# Embeddings (the SDK asks for base64 and decodes it).
vectors = client.embeddings.create(model="bge-m3", input=["first text", "second text"])
print("embeddings:", len(vectors.data), "vectors of", len(vectors.data[0].embedding))

# Errors are OpenAI's, as the SDK's typed exceptions.
try:
    client.chat.completions.create(
        model="llama-3.1-8b-instruct",
        messages=[{"role": "user", "content": "Hello"}],
        n=2,
    )
except openai.BadRequestError as err:
    print("error:", err.status_code, "param:", err.param)
