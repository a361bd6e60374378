# The interactive chat through a pseudo-terminal, against this build's
# m40-llm (tests/py/chat_ctest.py): in the ASan/UBSan build, the chat's
# memory and leak check. Third-party leaks are suppressed by tests/lsan.supp;
# full unwinding on malloc lets its library patterns match.
find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND)
  add_test(NAME cli_chat_pty COMMAND ${Python3_EXECUTABLE} ${CMAKE_SOURCE_DIR}/tests/py/chat_ctest.py
           WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  set_tests_properties(cli_chat_pty PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 900 LABELS cli
    ENVIRONMENT "M40LLM_BIN=$<TARGET_FILE:m40-llm>;LSAN_OPTIONS=suppressions=${CMAKE_SOURCE_DIR}/tests/lsan.supp;ASAN_OPTIONS=fast_unwind_on_malloc=0")
endif()
