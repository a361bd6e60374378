"""ctest entry point (cmake/tests_server.cmake): the `m40-llm serve` tests
(test_serve.py, test_serve_robust.py, test_serve_batching.py,
test_serve_moe.py, test_serve_template.py, test_serve_json.py) against the m40-llm of the build being tested. In the
ASan/UBSan build this is the server's memory and leak check: every test
requires the server to exit 0 on SIGTERM, which a sanitizer report turns
into 1. Exit 77 (skipped) without pytest or the model; without
the openai or ollama package their tests are skipped with that reason."""
from ctest_pytest import run

run(["-rs", "-s", "test_serve.py", "test_serve_robust.py", "test_serve_batching.py",
     "test_serve_moe.py", "test_serve_template.py", "test_serve_json.py"])
