"""ctest entry point (cmake/tests_webui.cmake): the chat page's tests
(test_webui.py: over HTTP, and in headless chromium through playwright)
against the m40-llm of the build being tested, so the ASan/UBSan build
checks the server under the page's traffic too (each server must exit 0 on
SIGTERM). Exit 77 (skipped) without pytest or the model; without
playwright or chromium the browser tests are skipped with that reason."""
from ctest_pytest import run

run(["-rs", "test_webui.py"])
