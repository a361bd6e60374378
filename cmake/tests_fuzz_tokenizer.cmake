# Short libFuzzer run of the tokenizer (scripts/fuzz_tokenizer.sh), only where
# clang exists.
find_program(M40_CLANG_TOK NAMES clang clang-18 clang-17 clang-16 clang-15 clang-14)
if(M40_CLANG_TOK)
  add_test(NAME fuzz_tokenizer_short COMMAND ${CMAKE_SOURCE_DIR}/scripts/fuzz_tokenizer.sh 20
           WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  set_tests_properties(fuzz_tokenizer_short PROPERTIES LABELS fuzz SKIP_RETURN_CODE 77 TIMEOUT 300
    ENVIRONMENT "CLANG=${M40_CLANG_TOK};M40LLM_FUZZ_DIR=${CMAKE_BINARY_DIR}/fuzz;M40LLM_FIXTURES=${CMAKE_SOURCE_DIR}/tests/fixtures")
endif()
