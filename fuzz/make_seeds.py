#!/usr/bin/env python3
"""Writes the fuzz targets' seed inputs (fuzz/seeds/<target>/) and the shared
dictionary (fuzz/dict/gateway.dict) from small realistic requests, responses,
streams and the demo plugin configuration of envoy/demo.yaml.

Run from anywhere: `python3 fuzz/make_seeds.py`. Only the standard library.
The seeds are committed; re-run after changing the demo configuration.
Files named `regress-*` are inputs fuzzing once failed on, kept by hand.
"""

import base64
import hashlib
import hmac
import json
import pathlib
import struct

FUZZ = pathlib.Path(__file__).resolve().parent
ROOT = FUZZ.parent
SEEDS = FUZZ / "seeds"


def demo_config_text() -> str:
    """The plugin configuration (the JSON under `value: |`) of envoy/demo.yaml."""
    lines = (ROOT / "envoy" / "demo.yaml").read_text().splitlines()
    for i, line in enumerate(lines):
        if "google.protobuf.StringValue" in line and lines[i + 1].strip() == "value: |":
            indent = len(lines[i + 1]) - len(lines[i + 1].lstrip()) + 2
            body = []
            for text in lines[i + 2 :]:
                if text.strip() and len(text) - len(text.lstrip()) < indent:
                    break
                body.append(text[indent:])
            text = "\n".join(body).strip() + "\n"
            json.loads(text)  # must be the JSON document
            return text
    raise SystemExit("no plugin configuration found in envoy/demo.yaml")


CONFIG_TEXT = demo_config_text()
CONFIG = json.loads(CONFIG_TEXT)
SECRET = CONFIG["id_secret"].encode()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def routed_id(key_id: str, backend: str, original: str, secret: bytes = SECRET) -> str:
    """A gateway-issued id, as src/ids.rs issues it."""
    message = b"\n".join([b"openai-gateway id v1", key_id.encode(), backend.encode(), original.encode()])
    tag = hmac.new(secret, message, hashlib.sha256).digest()[:12]
    prefix, sep, _ = original.partition("_")
    if not (sep and prefix and len(prefix) <= 16 and all("a" <= c <= "z" for c in prefix)):
        prefix = "gw"
    return f"{prefix}_{b64(backend.encode())}.{b64(original.encode())}.{b64(tag)}"


def compact(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


RESP_ID = routed_id("demo", "backend-a", "resp_backend-a_42")
DEFERRED_ID = routed_id("demo", "backend-a", "req_7f3a")
VIDEO_ID = routed_id("demo", "backend-b", "video_backend-b_1")

CHAT = {
    "model": "llama-3.1-8b-instruct",
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Say hi"},
    ],
    "max_tokens": 16,
    "temperature": 0.2,
}
CHAT_STREAM_TOOLS = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "weather",
                "description": "Current weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        }
    ],
    "tool_choice": "auto",
    "stream": True,
    "seed": 7,
    "stop": ["\n\n"],
}
CHAT_VISION_SCHEMA = {
    "model": "qwen2-vl-7b-instruct",
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
            ],
        }
    ],
    "response_format": {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": {"type": "object", "properties": {"a": {"type": "string"}}}},
    },
    "stream": True,
    "stream_options": {"include_usage": False},
    "n": 1,
}
CHAT_DEFERRED = {
    "model": "deepseek-r1-distill-qwen-7b",
    "messages": [{"role": "user", "content": "Think, then answer: 2+2?"}],
    "deferred": True,
    "reasoning_effort": "low",
    "max_completion_tokens": 256,
}
COMPLETION = {"model": "qwen2.5-coder-7b-instruct", "prompt": "def add(a, b):", "max_tokens": 32, "stream": True, "echo": False}
EMBEDDINGS = {"model": "bge-m3", "input": ["first text", "second text"], "encoding_format": "base64"}
IMAGES = {"model": "flux.1-schnell", "prompt": "a red fox", "n": 1, "size": "512x512", "response_format": "b64_json"}
SPEECH = {"model": "tts-1", "input": "Hello there.", "voice": "af_heart", "response_format": "wav", "speed": 1.0}
VIDEO = {"model": "wan2.1-t2v-1.3b", "prompt": "a paper boat on a river"}
RESPONSES = {
    "model": "llama-3.1-8b-instruct",
    "input": [{"role": "user", "content": [{"type": "input_text", "text": "And then?"}]}],
    "instructions": "Be brief.",
    "previous_response_id": RESP_ID,
    "store": True,
    "max_output_tokens": 64,
}


def multipart(boundary: str, fields) -> bytes:
    out = b""
    for name, value, filename in fields:
        out += f"--{boundary}\r\n".encode()
        disposition = f'Content-Disposition: form-data; name="{name}"'
        if filename:
            disposition += f'; filename="{filename}"\r\nContent-Type: audio/wav'
        out += disposition.encode() + b"\r\n\r\n" + value + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


BOUNDARY = "----OpenAIFormBoundary7MA4YWxkTrZu0gW"
TRANSCRIPTION = multipart(
    BOUNDARY,
    [
        ("file", b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00", "speech.wav"),
        ("model", b"whisper-1", None),
        ("language", b"en", None),
        ("response_format", b"json", None),
    ],
)


def request(line: str, headers, body: bytes | None = None) -> bytes:
    """The request_pipeline input: request line, header lines, blank line, body."""
    head = line + "\n" + "".join(f"{name}: {value}\n" for name, value in headers)
    return head.encode() + (b"" if body is None else b"\n" + body)


DEMO = ("authorization", "Bearer sk-demo")
EMBED = ("authorization", "Bearer sk-embed")
JSON_CT = ("content-type", "application/json")

PIPELINE = {
    "chat": request("POST /v1/chat/completions", [DEMO, JSON_CT], compact(CHAT)),
    "chat_stream_tools": request("POST /v1/chat/completions", [DEMO, JSON_CT], compact(CHAT_STREAM_TOOLS)),
    "chat_vision_schema": request("POST /v1/chat/completions", [DEMO, JSON_CT], compact(CHAT_VISION_SCHEMA)),
    "chat_deferred": request("POST /v1/chat/completions", [DEMO, JSON_CT], compact(CHAT_DEFERRED)),
    "completions": request("POST /v1/completions", [DEMO, JSON_CT], compact(COMPLETION)),
    "embeddings_limited_key": request("POST /v1/embeddings", [EMBED, JSON_CT], compact(EMBEDDINGS)),
    "images": request("POST /v1/images/generations", [DEMO, JSON_CT], compact(IMAGES)),
    "speech": request("POST /v1/audio/speech", [DEMO, JSON_CT], compact(SPEECH)),
    "video": request("POST /v1/videos/generations", [DEMO, JSON_CT], compact(VIDEO)),
    "responses_previous": request("POST /v1/responses", [DEMO, JSON_CT], compact(RESPONSES)),
    "transcription": request(
        "POST /v1/audio/transcriptions",
        [DEMO, ("content-type", f"multipart/form-data; boundary={BOUNDARY}")],
        TRANSCRIPTION,
    ),
    "list_models": request("GET /v1/models", [DEMO]),
    "retrieve_model_limited": request("GET /v1/models/gpt-4o-mini", [EMBED]),
    "response_by_id": request(f"GET /v1/responses/{RESP_ID}?include=usage", [DEMO]),
    "delete_response": request(f"DELETE /v1/responses/{RESP_ID}", [DEMO]),
    "deferred_by_id": request(f"GET /v1/chat/deferred-completion/{DEFERRED_ID}", [DEMO]),
    "video_by_id": request(f"GET /v1/videos/{VIDEO_ID}", [DEMO]),
    "preflight": request(
        "OPTIONS /v1/chat/completions",
        [("origin", "https://example.com"), ("access-control-request-method", "POST")],
    ),
    "unsupported": request("POST /v1/assistants", [DEMO, JSON_CT], b"{}"),
    "no_key": request("POST /v1/chat/completions", [JSON_CT], compact(CHAT)),
}

JSON_DOCUMENTS = {
    "chat": compact(CHAT),
    "tools": json.dumps(CHAT_STREAM_TOOLS, indent=1).encode(),
    "vision": compact(CHAT_VISION_SCHEMA),
    "escapes": rb'{"model":"m","messages":[{"role":"user","content":"caf\u00e9 \ud83d\ude00 \"q\" \\ \/"}],"n":-0,"t":1.5e-3,"big":18446744073709551615,"neg":-9223372036854775808}',
    "nested": b'{"a":[[[{"b":{"c":[null,true,false,{}]}}]]],"e":[]}',
    "duplicate": b'{"model":"a","messages":[{"role":"user","ro\\u006ce":"x"}]}',
}

USAGE = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17, "prompt_tokens_details": {"cached_tokens": 8}}
RESPONSES_JSON = {
    "chat_completion": {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "meta-llama/Llama-3.1-8B-Instruct",
        "system_fingerprint": "fp_44709d6fcb",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}],
        "usage": USAGE,
    },
    "usage_only_chunk": {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "system_fingerprint": "fp_1",
        "choices": [],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    },
    "embeddings": {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": "AAAAAA=="}],
        "model": "bge-m3",
        "usage": {"prompt_tokens": 4, "total_tokens": 4},
    },
    "response": {
        "id": "resp_backend-a_42",
        "object": "response",
        "status": "completed",
        "output": [{"id": "msg_1", "type": "message", "content": [{"type": "output_text", "text": "ok"}]}],
        "usage": {"input_tokens": 9, "output_tokens": 2, "total_tokens": 11},
    },
    "stream_event": {"type": "response.created", "response": {"id": "resp_backend-a_43", "status": "in_progress"}},
    "cache_fields_present": {
        "id": "x",
        "usage": {"prompt_tokens": 1, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0},
    },
}


def chunk(content: str | None, usage=None, finish=None) -> bytes:
    delta = {} if content is None else {"content": content}
    choices = [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}]
    body = {"id": "chatcmpl-9", "object": "chat.completion.chunk", "system_fingerprint": "fp_9", "choices": choices}
    if usage:
        body["usage"] = usage
    return b"data: " + compact(body) + b"\n\n"


CHAT_STREAM = (
    chunk("Hel")
    + chunk("lo")
    + chunk(None, finish="stop")
    + chunk(None, usage={"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5})
    + b"data: [DONE]\n\n"
)
RESPONSES_STREAM = (
    b"event: response.created\ndata: " + compact(RESPONSES_JSON["stream_event"]) + b"\n\n"
    b": keep-alive\n\n"
    b"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"ok\"}\n\n"
    b"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_backend-a_43\",\"usage\":{\"input_tokens\":1,\"output_tokens\":1,\"total_tokens\":2}}}\n\n"
)
MULTILINE = b"id: 1\nretry: 100\ndata: {\"a\":\ndata: 1}\n\ndata\n\ndatabase: x\n\ndata:{\"usage\":{}}\r\n\r\n"


def sse(stream: bytes, cuts=()) -> bytes:
    """The sse_reader input: a cut count, the cuts (u16 LE), then the stream."""
    return bytes([len(cuts)]) + b"".join(struct.pack("<H", c) for c in cuts) + stream


SSE = {
    "chat_whole": sse(CHAT_STREAM),
    "chat_cut": sse(CHAT_STREAM, (1, 7, 60, 61, 200, 201, 202)),
    "chat_crlf_cut": sse(CHAT_STREAM.replace(b"\n", b"\r\n"), (5, 6, 99, 100)),
    "chat_cr": sse(CHAT_STREAM.replace(b"\n", b"\r")),
    "responses": sse(RESPONSES_STREAM, (30, 31, 32)),
    "multiline": sse(MULTILINE, (8, 20, 21)),
}

MULTIPART = {
    # Raw mode: the content type on the first line, the body after it.
    "transcription": f"multipart/form-data; boundary={BOUNDARY}\n".encode() + TRANSCRIPTION,
    "quoted_boundary": b'multipart/form-data; charset=utf-8; boundary="a b"\n'
    + multipart("a b", [("model", b"whisper-large-v3", None), ("file", b"\x00\xff\r\n--a", "x.wav")]),
    "preamble": b"Multipart/Form-Data; Boundary=XyZ\nignored preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=model\r\n\r\nm\r\n--XyZ--",
    # Round-trip mode ('#'): the rest drives `arbitrary`.
    "round_trip": b"#" + bytes(range(64)),
}

ID_MESSAGES = {
    # The ids target: key id line, id line, then bytes for the round trip.
    "response": f"demo\n{RESP_ID}\n".encode() + b"secret-bytes-for-the-round-trip",
    "deferred": f"demo\n{DEFERRED_ID}\n".encode(),
    "video_other_key": f"demo-limited\n{VIDEO_ID}\n".encode(),
    "prefix_changed": f"demo\nxyz_{RESP_ID.partition('_')[2]}\n".encode(),
    "garbage": b"demo\nresp_!!.??.__\n\xff\xfe",
}

CONFIGS = {
    "demo": CONFIG_TEXT.encode(),
    "minimal": b'{"api_keys":[{"id":"k","sha256":"' + b"ab" * 32 + b'"}],"models":[{"id":"m","category":"text","backend":"b"}]}',
    "full": compact(
        {
            "api_keys": [
                {"id": "a", "sha256": "00" * 32, "models": ["m", "alias"]},
                {"id": "b", "sha256": "11" * 32},
            ],
            "models": [
                {
                    "id": "m",
                    "category": "multimodal",
                    "backend": "b-1",
                    "aliases": ["alias"],
                    "capabilities": ["vision", "tool_use", "json_schema"],
                    "upstream_model": "org/m",
                    "owned_by": "me",
                    "created": 1700000000,
                },
                {"id": "v", "category": "video", "backend": "b-2"},
            ],
            "backends": [{"name": "b-1", "authorization": "Bearer t"}],
            "headers": {"backend": "x-be", "key_id": "x-key", "model": "x-model", "token_cost": "x-cost"},
            "doc_url": "https://example.com/errors",
            "token_limits": {"default_max_tokens": 512},
            "id_secret": "x" * 32,
        }
    ),
    "charger": b'{"token_charger": {"header": "x-gateway-token-cost"}}',
}

DICT_TOKENS = sorted(
    set(
        [
            # request members and values
            "model", "messages", "role", "user", "assistant", "system", "developer", "tool", "content", "text",
            "stream", "stream_options", "include_usage", "tools", "tool_calls", "tool_choice", "tool_call_id",
            "function", "functions", "function_call", "name", "parameters", "arguments", "response_format",
            "json_schema", "json_object", "schema", "strict", "max_tokens", "max_completion_tokens",
            "max_output_tokens", "n", "temperature", "top_p", "seed", "stop", "input", "prompt", "encoding_format",
            "base64", "float", "dimensions", "previous_response_id", "deferred", "image_url", "url", "detail",
            "input_audio", "voice", "speed", "instructions", "store", "reasoning_effort", "logprobs", "type",
            # models of the demo catalog
            "llama-3.1-8b-instruct", "gpt-4o-mini", "bge-m3", "whisper-1", "tts-1", "flux.1-schnell",
            "qwen2-vl-7b-instruct", "wan2.1-t2v-1.3b", "deepseek-r1-distill-qwen-7b",
            # responses and streams
            "usage", "prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details",
            "cached_tokens", "cache_read_input_tokens", "cache_creation_input_tokens", "system_fingerprint",
            "choices", "delta", "id", "response", "data: ", "data:", "[DONE]", "event: ", "\r\n", "\n\n",
            # configuration
            "api_keys", "sha256", "models", "category", "backend", "aliases", "capabilities", "upstream_model",
            "owned_by", "created", "backends", "authorization", "headers", "key_id", "token_cost", "id_secret",
            "doc_url", "token_limits", "default_max_tokens", "token_charger", "embeddings", "multimodal",
            "vision", "tool_use",
            # requests and forms
            "Bearer sk-demo", "Bearer sk-embed", "authorization: ", "content-type: ", "application/json",
            "multipart/form-data; boundary=", "Content-Disposition: form-data; name=", "/v1/", "/v1/responses/",
            # json
            "true", "false", "null", "\\u0000", "\\ud83d",
        ]
    )
)


def dict_line(token: str) -> str:
    escaped = "".join(
        c if 0x20 <= ord(c) < 0x7F and c not in '"\\' else f"\\x{ord(c):02X}" for c in token
    )
    return f'"{escaped}"'


def main() -> None:
    for target, seeds in {
        "request_pipeline": PIPELINE,
        "json_document": JSON_DOCUMENTS,
        "sse_reader": SSE,
        "multipart_form": MULTIPART,
        "plugin_config": CONFIGS,
        "routed_ids": ID_MESSAGES,
        "response_adjust": {name: compact(value) for name, value in RESPONSES_JSON.items()},
    }.items():
        folder = SEEDS / target
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in seeds.items():
            (folder / name).write_bytes(data)
    dict_dir = FUZZ / "dict"
    dict_dir.mkdir(exist_ok=True)
    (dict_dir / "gateway.dict").write_text(
        "# libFuzzer dictionary: written by fuzz/make_seeds.py\n" + "\n".join(map(dict_line, DICT_TOKENS)) + "\n"
    )


if __name__ == "__main__":
    main()
