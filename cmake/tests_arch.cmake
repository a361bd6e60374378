# Issues 24 and 25's architecture fixtures (mixture-of-experts ones too):
# the CPU backend against the float64 transformers logits of
# tests/fixtures/arch (tools/make_arch_fixtures.py), tier A and B with the
# greedy continuations, through test_reference.
add_test(NAME test_arch_reference COMMAND test_reference arch 26 WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(test_arch_reference PROPERTIES SKIP_RETURN_CODE 77 LABELS arch
  ENVIRONMENT "M40LLM_FIXTURES=${M40_FIXTURES}")
# The real Gemma 3 270M (test_gemma3, M40LLM_GEMMA3 from scripts/test.sh):
# a 768-token perplexity chunk and a greedy answer on the CPU take seconds in
# the release build, minutes under the sanitizers: labelled slow.
set_tests_properties(test_gemma3 PROPERTIES LABELS "arch;slow" TIMEOUT 900)
