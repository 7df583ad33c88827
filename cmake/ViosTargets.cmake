# Helpers that give every vios target the same warnings, sanitizers and test registration.

set(VIOS_WARNINGS -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast
    -Wcast-align -Woverloaded-virtual -Wimplicit-fallthrough)
if(VIOS_WERROR)
  list(APPEND VIOS_WARNINGS -Werror)
endif()

if(VIOS_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer
                      -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()

# vios_target_options(target): the project's warning set, applied to our own code only.
function(vios_target_options target)
  target_compile_options(${target} PRIVATE ${VIOS_WARNINGS})
endfunction()

# vios_library(name SOURCES ... DEPS ...): a static library rooted at the repository top, so
# includes read "node-agent/iscsi/pdu.h" / "common/log/log.h".
function(vios_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
  vios_target_options(${name})
endfunction()

# vios_test(name SOURCES ... DEPS ... [LABELS ...]): a GoogleTest binary registered with ctest.
# Label "unit" for hermetic tests; "integration" for tests that start real processes.
function(vios_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest_main GTest::gmock)
  vios_target_options(${name})
  if(NOT ARG_LABELS)
    set(ARG_LABELS unit)
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT}
                       ENVIRONMENT "VIOS_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
endfunction()

# vios_add_subdirectories(dir...): add the component folders that exist; lets folders land one
# at a time without editing their parent.
function(vios_add_subdirectories)
  foreach(dir ${ARGN})
    if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/${dir}/CMakeLists.txt)
      add_subdirectory(${dir})
    endif()
  endforeach()
endfunction()
