# The chat page of `m40-llm serve` (tests/py/webui_ctest.py runs
# test_webui.py: raw HTTP, then Debian's chromium driven headless by
# playwright) against this build's m40-llm, in the ASan/UBSan build too.
# Screenshots are written to test-artifacts/ in the build folder.
find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND)
  add_test(NAME webui_py COMMAND ${Python3_EXECUTABLE} ${CMAKE_SOURCE_DIR}/tests/py/webui_ctest.py
           WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  set_tests_properties(webui_py PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 600 LABELS webui
    ENVIRONMENT "M40LLM_BIN=$<TARGET_FILE:m40-llm>;M40LLM_ARTIFACTS=${CMAKE_BINARY_DIR}/test-artifacts;LSAN_OPTIONS=suppressions=${CMAKE_SOURCE_DIR}/tests/lsan.supp;ASAN_OPTIONS=fast_unwind_on_malloc=0")
endif()
