# Included by the top-level CMakeLists.txt: builds fuzz/ with clang as an
# ExternalProject into build/fuzz (the main build is gcc; libFuzzer and the
# sanitizers it is used with need clang) and registers a bounded run of each
# target as a ctest test labelled "fuzz". ./dev fuzz runs them longer.
option(STREAMGRID_FUZZ "build the libFuzzer targets with clang and run them in ctest" ON)
set(STREAMGRID_FUZZ_SECONDS 20 CACHE STRING "seconds each fuzz target runs under ctest")

set(SG_FUZZ_TARGETS multipart byte_range url hls_fixup admin_cli)

if(STREAMGRID_FUZZ)
  find_program(SG_FUZZ_CLANGXX NAMES clang++-14 clang++)
  if(NOT SG_FUZZ_CLANGXX)
    message(WARNING "clang++ not found: the fuzz targets are not built (./dev installs clang)")
  else()
    include(ExternalProject)
    set(SG_FUZZ_BINARY_DIR ${CMAKE_BINARY_DIR}/fuzz)
    set(SG_FUZZ_CMAKE_ARGS -DCMAKE_CXX_COMPILER=${SG_FUZZ_CLANGXX} -DCMAKE_BUILD_TYPE=)
    if(CMAKE_CXX_COMPILER_LAUNCHER)
      list(APPEND SG_FUZZ_CMAKE_ARGS -DCMAKE_CXX_COMPILER_LAUNCHER=${CMAKE_CXX_COMPILER_LAUNCHER})
    endif()
    set(SG_FUZZ_BYPRODUCTS)
    foreach(name ${SG_FUZZ_TARGETS})
      list(APPEND SG_FUZZ_BYPRODUCTS ${SG_FUZZ_BINARY_DIR}/fuzz_${name})
    endforeach()
    ExternalProject_Add(streamgrid_fuzz
      SOURCE_DIR ${CMAKE_SOURCE_DIR}/fuzz
      BINARY_DIR ${SG_FUZZ_BINARY_DIR}
      CMAKE_GENERATOR ${CMAKE_GENERATOR}
      CMAKE_ARGS ${SG_FUZZ_CMAKE_ARGS}
      # The sources live in the main tree: let the inner build decide what changed.
      BUILD_ALWAYS ON
      BUILD_COMMAND ${CMAKE_COMMAND} --build ${SG_FUZZ_BINARY_DIR} -j 2
      BUILD_BYPRODUCTS ${SG_FUZZ_BYPRODUCTS}
      INSTALL_COMMAND ""
      STEP_TARGETS build)

    foreach(name ${SG_FUZZ_TARGETS})
      add_test(NAME fuzz.${name}
        COMMAND ${CMAKE_SOURCE_DIR}/fuzz/run.sh ${SG_FUZZ_BINARY_DIR}/fuzz_${name}
          ${STREAMGRID_FUZZ_SECONDS} ${CMAKE_BINARY_DIR}/fuzz-artifacts/${name})
      # The run itself plus start-up, on a loaded machine.
      math(EXPR sg_fuzz_timeout "${STREAMGRID_FUZZ_SECONDS} * 3 + 60")
      set_tests_properties(fuzz.${name} PROPERTIES LABELS fuzz TIMEOUT ${sg_fuzz_timeout})
    endforeach()
  endif()
endif()
