"""Chat backend for any OpenAI-compatible server (``vllm serve`` first, llama-cpp-python's server too).

Bounded in-flight requests, a total timeout per HTTP attempt, retries with exponential backoff +
jitter on 429 / 5xx / timeouts / dropped connections (Retry-After honoured), a circuit breaker shared
by all requests of one client, JSON-schema structured output in two dialects (decided by a retried
start-up probe), jsonschema validation with exactly one repair retry, truncated replies
(``finish_reason == "length"``) never parsed as valid, usage accounting. The API key is never logged,
never in a repr, and redacted from any server text that ends up in an exception.

The modules, each one job, imports pointing down the list:

- :mod:`.endpoint`: the endpoint settings (:class:`OpenAIEndpoint`), the API key from the
  environment, the redaction and error helpers;
- :mod:`.request_body`: wire messages, the chat body, structured output per dialect, probe bodies;
- :mod:`.replies`: error answers, reply shape, ``finish_reason``, structured reply parsing;
- :mod:`.resilience`: the retry policy and the circuit breaker;
- :mod:`.connection`: the HTTP client per event loop, one attempt, retries, accounting;
- :mod:`.startup`: the start-up check and the structured-output dialect probe;
- :mod:`.client`: :class:`OpenAICompatChat`, the ``ChatModel``.
"""

from .client import OpenAICompatChat
from .endpoint import OpenAIEndpoint
from .request_body import to_wire_messages

__all__ = ["OpenAICompatChat", "OpenAIEndpoint", "to_wire_messages"]
