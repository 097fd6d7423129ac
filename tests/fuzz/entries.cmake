# The fuzz entry points as a library, the seed generator and the corpus replay
# test. Included from tests/hostile/CMakeLists.txt (always built with the tests);
# tests/fuzz/CMakeLists.txt links the same library into libFuzzer executables.
set(CAIRN_FUZZ_DIR ${CMAKE_CURRENT_LIST_DIR})
add_library(cairn_fuzz_entries STATIC
  ${CAIRN_FUZZ_DIR}/fuzz_entries.cc
  ${CAIRN_FUZZ_DIR}/fuzz_fixture.cc
  ${CAIRN_FUZZ_DIR}/fuzz_peer.cc
  ${CAIRN_FUZZ_DIR}/fuzz_control.cc
  ${CAIRN_FUZZ_DIR}/fuzz_journal.cc
  ${CAIRN_FUZZ_DIR}/fuzz_targets.cc)
target_link_libraries(cairn_fuzz_entries PUBLIC cairn_node cairn_testutil PRIVATE cairn_common)

# cairn_fuzz_seeds OUT_DIR writes the seed corpus (committed in tests/fuzz/corpus).
add_executable(cairn_fuzz_seeds ${CAIRN_FUZZ_DIR}/seeds.cc)
target_link_libraries(cairn_fuzz_seeds PRIVATE cairn_fuzz_entries cairn_common)

cairn_test(fuzz_corpus_test fuzz
  SOURCES ${CAIRN_FUZZ_DIR}/corpus_test.cc
  LIBS cairn_fuzz_entries)
target_compile_definitions(fuzz_corpus_test
  PRIVATE CAIRN_FUZZ_CORPUS_DIR="${CAIRN_FUZZ_DIR}/corpus")
