# SPDX-License-Identifier: Apache-2.0
#
# hubprobe_bpf_object(NAME SOURCE): builds a BPF program into a libbpf skeleton, after
# libbpf-bootstrap's FindBpfObject.
#
#   SOURCE (x.bpf.c) --clang -target bpf--> NAME.tmp.bpf.o --bpftool gen object--> NAME.bpf.o
#   NAME.bpf.o --bpftool gen skeleton--> NAME.skel.h
#
# and an INTERFACE target NAME_skel that consumers link: it puts NAME.skel.h and the directory of
# SOURCE (where the shared x.h lives) on the include path and links libbpf. The skeleton embeds the
# object, so nothing has to be installed next to the binaries.
#
# Needs BPFTOOL, BPF_CLANG and PkgConfig::LIBBPF from the top-level CMakeLists.txt.
#
# vmlinux.h is generated once per build tree, at configure time, from HUBPROBE_BPF_VMLINUX_BTF
# (default: the running kernel's /sys/kernel/btf/vmlinux). BPF programs only use CO-RE-stable and UAPI
# types from it, so the header of the build host serves every target kernel that has the helpers.
include_guard(GLOBAL)

set(HUBPROBE_BPF_VMLINUX_BTF /sys/kernel/btf/vmlinux CACHE FILEPATH
    "Kernel BTF that vmlinux.h for the BPF programs is generated from")

foreach(_hubprobe_required BPFTOOL BPF_CLANG)
  if(NOT ${_hubprobe_required})
    message(FATAL_ERROR "BpfObject.cmake: ${_hubprobe_required} is not set; find it before including this module")
  endif()
endforeach()
if(NOT TARGET PkgConfig::LIBBPF)
  message(FATAL_ERROR "BpfObject.cmake: PkgConfig::LIBBPF is missing; "
                      "pkg_check_modules(LIBBPF REQUIRED IMPORTED_TARGET libbpf) first")
endif()

set(HUBPROBE_BPF_INCLUDE_DIR ${CMAKE_BINARY_DIR}/bpf-include)
# Headers shared with user space (hubprobe/stamp_wire.h); relative to this module, which is what
# ${CMAKE_SOURCE_DIR}/dataplane/stamp/include is in the hubprobe tree, and also right when another project
# includes the module.
get_filename_component(HUBPROBE_BPF_SHARED_INCLUDE_DIR ${CMAKE_CURRENT_LIST_DIR}/../dataplane/stamp/include ABSOLUTE)
set(HUBPROBE_VMLINUX_H ${HUBPROBE_BPF_INCLUDE_DIR}/vmlinux.h)

if(NOT EXISTS ${HUBPROBE_BPF_VMLINUX_BTF})
  message(FATAL_ERROR
    "BpfObject.cmake: ${HUBPROBE_BPF_VMLINUX_BTF} does not exist, so vmlinux.h cannot be generated. "
    "The BPF programs need a kernel built with CONFIG_DEBUG_INFO_BTF=y, or point "
    "-DHUBPROBE_BPF_VMLINUX_BTF=<file> at a BTF blob or vmlinux image of such a kernel.")
endif()
if(NOT EXISTS ${HUBPROBE_VMLINUX_H})
  file(MAKE_DIRECTORY ${HUBPROBE_BPF_INCLUDE_DIR})
  execute_process(
    COMMAND ${BPFTOOL} btf dump file ${HUBPROBE_BPF_VMLINUX_BTF} format c
    OUTPUT_FILE ${HUBPROBE_VMLINUX_H}.tmp
    RESULT_VARIABLE _hubprobe_btf_result
    ERROR_VARIABLE _hubprobe_btf_error)
  if(NOT _hubprobe_btf_result EQUAL 0)
    file(REMOVE ${HUBPROBE_VMLINUX_H}.tmp)
    message(FATAL_ERROR "BpfObject.cmake: `${BPFTOOL} btf dump file ${HUBPROBE_BPF_VMLINUX_BTF} format c` "
                        "failed (${_hubprobe_btf_result}): ${_hubprobe_btf_error}")
  endif()
  file(RENAME ${HUBPROBE_VMLINUX_H}.tmp ${HUBPROBE_VMLINUX_H})
  message(STATUS "BpfObject: generated ${HUBPROBE_VMLINUX_H} from ${HUBPROBE_BPF_VMLINUX_BTF}")
endif()

# With -target bpf clang searches neither the multiarch directory (/usr/include/x86_64-linux-gnu,
# where asm/types.h lives) nor anything else of the host. Take the host compiler's system include
# directories and append them with -idirafter, so <linux/*.h> works if a program ever needs it while
# vmlinux.h and <bpf/bpf_helpers.h> (found in /usr/include) keep precedence.
execute_process(
  COMMAND ${BPF_CLANG} -v -E -x c -
  INPUT_FILE /dev/null
  OUTPUT_QUIET
  ERROR_VARIABLE _hubprobe_clang_v)
string(REGEX MATCH "#include <\\.\\.\\.> search starts here:\n(.*)End of search list\\."
       _hubprobe_unused "${_hubprobe_clang_v}")
string(REGEX MATCHALL "[^\n ]+" _hubprobe_clang_system_dirs "${CMAKE_MATCH_1}")
set(HUBPROBE_BPF_SYSTEM_INCLUDES "")
foreach(_hubprobe_dir IN LISTS _hubprobe_clang_system_dirs)
  list(APPEND HUBPROBE_BPF_SYSTEM_INCLUDES -idirafter ${_hubprobe_dir})
endforeach()

if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
  set(HUBPROBE_BPF_ARCH x86)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64)$")
  set(HUBPROBE_BPF_ARCH arm64)
else()
  message(FATAL_ERROR "BpfObject.cmake: no __TARGET_ARCH_ mapping for ${CMAKE_SYSTEM_PROCESSOR}")
endif()

function(hubprobe_bpf_object NAME SOURCE)
  get_filename_component(_source ${SOURCE} ABSOLUTE)
  get_filename_component(_source_dir ${_source} DIRECTORY)
  set(_out_dir ${CMAKE_CURRENT_BINARY_DIR}/${NAME}_skel)
  set(_tmp_object ${_out_dir}/${NAME}.tmp.bpf.o)
  set(_object ${_out_dir}/${NAME}.bpf.o)
  set(_skeleton ${_out_dir}/${NAME}.skel.h)
  file(MAKE_DIRECTORY ${_out_dir})

  # -g gives the BTF that libbpf needs (maps, globals, CO-RE); -MD keeps the shared headers tracked.
  # -fno-strict-aliasing as in the kernel: packet code reads the same octets through several types.
  # -mcpu=v3 for the atomic fetch-and-add and compare-and-swap instructions (kernel >= 5.12; the
  # programs need newer kernels anyway).
  add_custom_command(
    OUTPUT ${_tmp_object}
    COMMAND ${BPF_CLANG} -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_${HUBPROBE_BPF_ARCH}
            -Wall -Wextra -Werror -fno-strict-aliasing
            -I${HUBPROBE_BPF_INCLUDE_DIR}
            -I${_source_dir}
            -I${HUBPROBE_BPF_SHARED_INCLUDE_DIR}
            ${HUBPROBE_BPF_SYSTEM_INCLUDES}
            -MD -MF ${_tmp_object}.d
            -c ${_source} -o ${_tmp_object}
    DEPENDS ${_source} ${HUBPROBE_VMLINUX_H} ${CMAKE_CURRENT_FUNCTION_LIST_FILE}
    DEPFILE ${_tmp_object}.d
    COMMENT "BPF: compiling ${NAME} (${SOURCE})"
    VERBATIM)

  # The static linker drops DWARF but keeps BTF, so the object embedded in the skeleton is small.
  add_custom_command(
    OUTPUT ${_object}
    COMMAND ${BPFTOOL} gen object ${_object} ${_tmp_object}
    DEPENDS ${_tmp_object}
    COMMENT "BPF: linking ${NAME}.bpf.o"
    VERBATIM)

  # bpftool writes the skeleton to stdout; go through a temporary so a failure leaves no stale header.
  add_custom_command(
    OUTPUT ${_skeleton}
    COMMAND sh -c "\"$0\" gen skeleton \"$1\" name \"$2\" > \"$3.tmp\" && mv \"$3.tmp\" \"$3\""
            ${BPFTOOL} ${_object} ${NAME} ${_skeleton}
    DEPENDS ${_object}
    COMMENT "BPF: generating ${NAME}.skel.h"
    VERBATIM)

  add_custom_target(${NAME}_skel_gen DEPENDS ${_skeleton})
  add_library(${NAME}_skel INTERFACE)
  target_include_directories(${NAME}_skel INTERFACE ${_out_dir} ${_source_dir})
  # Shared libbpf brings libelf and zlib in through its own DT_NEEDED entries.
  target_link_libraries(${NAME}_skel INTERFACE PkgConfig::LIBBPF)
  add_dependencies(${NAME}_skel ${NAME}_skel_gen)
  set_target_properties(${NAME}_skel PROPERTIES
    HUBPROBE_BPF_OBJECT ${_object}
    HUBPROBE_BPF_SKELETON ${_skeleton})
endfunction()
