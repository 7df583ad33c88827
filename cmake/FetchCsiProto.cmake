# FetchCsiProto: brings csi.proto (CSI spec, pinned version) into the build tree at configure time.
#
# DESIGN.md §12: csi.proto is not committed; it comes from its own Go module
# (github.com/container-storage-interface/spec) through the Go module proxy. `go mod download`
# verifies the module against the Go checksum database; we additionally pin the SHA-256 of the file
# itself so that a changed or tampered module cache fails the configure loudly. Works offline when
# the module is already in the Go module cache (go mod download answers from the cache).
#
#   include(FetchCsiProto)
#   vios_fetch_csi_proto(ROOT)   # ROOT/proto/csi.proto exists and is verified; use ROOT as a
#                                # protoc --proto_path so that code lands at "proto/csi.pb.h"

set(VIOS_CSI_MODULE "github.com/container-storage-interface/spec")
set(VIOS_CSI_VERSION "v1.12.0")
set(VIOS_CSI_PROTO_SHA256 "5b81236a3809f3ff0b877ff9b82215d0b74a8e291d7f3ec6ee1a44f537c0f86a")

function(vios_fetch_csi_proto out_var)
  set(root "${PROJECT_BINARY_DIR}/fetched")
  set(dest_dir "${root}/proto")
  set(dest "${dest_dir}/csi.proto")

  # A copy from an earlier configure that still matches the pin needs no Go at all.
  if(EXISTS "${dest}")
    file(SHA256 "${dest}" have)
    if(have STREQUAL VIOS_CSI_PROTO_SHA256)
      set(${out_var} "${root}" PARENT_SCOPE)
      return()
    endif()
  endif()

  find_program(VIOS_GO go)
  if(NOT VIOS_GO)
    message(FATAL_ERROR "FetchCsiProto: `go` not found; it is needed once to fetch csi.proto "
                        "(${VIOS_CSI_MODULE}@${VIOS_CSI_VERSION}) through the Go module proxy. "
                        "Run scripts/setup.")
  endif()

  # Run outside any Go module (and workspace, and ambient GOFLAGS) so the download does not touch
  # a go.mod.
  file(MAKE_DIRECTORY "${dest_dir}")
  execute_process(
    COMMAND ${CMAKE_COMMAND} -E env GO111MODULE=on GOFLAGS= GOWORK=off
            ${VIOS_GO} mod download -json ${VIOS_CSI_MODULE}@${VIOS_CSI_VERSION}
    WORKING_DIRECTORY "${dest_dir}"
    RESULT_VARIABLE rc
    OUTPUT_VARIABLE json
    ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "FetchCsiProto: go mod download ${VIOS_CSI_MODULE}@${VIOS_CSI_VERSION} "
                        "failed (${rc}): ${err}${json}")
  endif()
  string(JSON module_dir ERROR_VARIABLE json_err GET "${json}" Dir)
  if(json_err OR NOT EXISTS "${module_dir}/csi.proto")
    message(FATAL_ERROR "FetchCsiProto: no csi.proto in the downloaded module (${json_err}): "
                        "${json}")
  endif()

  file(SHA256 "${module_dir}/csi.proto" got)
  if(NOT got STREQUAL VIOS_CSI_PROTO_SHA256)
    message(FATAL_ERROR "FetchCsiProto: checksum mismatch for ${module_dir}/csi.proto\n"
                        "  expected sha256 ${VIOS_CSI_PROTO_SHA256}\n"
                        "  got      sha256 ${got}\n"
                        "The module cache or the pin in cmake/FetchCsiProto.cmake is wrong; "
                        "refusing to build against an unverified CSI spec.")
  endif()

  # The module cache is read-only: copy the file out (the copy is writable by the build).
  file(COPY_FILE "${module_dir}/csi.proto" "${dest}")
  file(CHMOD "${dest}" PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
  message(STATUS "FetchCsiProto: csi.proto ${VIOS_CSI_VERSION} verified (sha256 ${got})")
  set(${out_var} "${root}" PARENT_SCOPE)
endfunction()
