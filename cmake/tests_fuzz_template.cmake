# Short libFuzzer run of the chat-template engine (scripts/fuzz_template.sh),
# only where clang exists.
find_program(M40_CLANG_T NAMES clang clang-18 clang-17 clang-16 clang-15 clang-14)
if(M40_CLANG_T)
  add_test(NAME fuzz_template_short COMMAND ${CMAKE_SOURCE_DIR}/scripts/fuzz_template.sh 20
           WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  set_tests_properties(fuzz_template_short PROPERTIES LABELS fuzz SKIP_RETURN_CODE 77 TIMEOUT 300
    ENVIRONMENT "CLANG=${M40_CLANG_T};M40LLM_FUZZ_DIR=${CMAKE_BINARY_DIR}/fuzz")
endif()
