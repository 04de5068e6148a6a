"""Context windows through the real SDK: a request that provably cannot fit
its model's declared window, or asks for more output than the model gives,
is a 400 with OpenAI's code and param before anything reaches a backend; a
request that may fit goes on (the gateway's bound counts whitespace-separated
words, never more tokens than a real tokenizer would).

The demo catalog declares qwen2.5-coder-7b-instruct at 32,768 tokens and
bge-m3 at 8,192."""

import openai
import pytest

from harness import last_request, nothing_reached

CODER = "qwen2.5-coder-7b-instruct"


def words(n: int) -> str:
    return "word " * n


def test_an_embedding_input_over_the_window_is_context_length_exceeded(client, backends):
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(model="bge-m3", input=["short", words(8193)])
    assert err.value.code == "context_length_exceeded"
    assert err.value.param == "input"
    assert "maximum context length is 8192 tokens" in err.value.message
    assert nothing_reached(backends)
    # Each input is its own sequence: a batch of inputs that each fit goes on.
    result = client.embeddings.create(model="bge-m3", input=[words(8000), words(8000)])
    assert len(result.data) == 2


def test_a_conversation_over_the_window_is_context_length_exceeded(client, backends):
    messages = [{"role": "system", "content": words(20_000)}, {"role": "user", "content": words(13_000)}]
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=CODER, messages=messages)
    assert (err.value.code, err.value.param) == ("context_length_exceeded", "messages")
    assert nothing_reached(backends)
    # The requested output counts: 30,000 words and 3,000 tokens cannot fit...
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=CODER, messages=[{"role": "user", "content": words(30_000)}],
                                       max_tokens=3000)
    assert err.value.code == "context_length_exceeded"
    assert nothing_reached(backends)
    # ...30,000 words and 2,000 may: the backend decides.
    reply = client.chat.completions.create(model=CODER, messages=[{"role": "user", "content": words(30_000)}],
                                           max_tokens=2000)
    assert reply.choices
    assert last_request(backends["backend-a"])["path"] == "/v1/chat/completions"


def test_more_output_than_the_model_gives_names_the_field(client, backends):
    for field in ("max_tokens", "max_completion_tokens"):
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(model=CODER, messages=[{"role": "user", "content": "hi"}],
                                           **{field: 40_000})
        assert err.value.param == field
        assert err.value.code is None
        assert f"{field} is too large: 40000" in err.value.message
    assert nothing_reached(backends)
