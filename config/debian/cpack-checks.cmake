# SPDX-License-Identifier: Apache-2.0
# CPACK_PROJECT_CONFIG_FILE (top-level CMakeLists.txt): cpack reads this before it installs anything.
# It refuses a .deb without man pages or whose version has no changelog entry (docs/operations.md,
# "Packaging"). Any build makes the package, whatever its prefix: the programs find their configuration
# from where they are installed, and the man pages name the package's paths.
if(CPACK_GENERATOR STREQUAL "DEB")
  if(NOT CPACK_HUBPROBE_MAN_PAGES)
    message(FATAL_ERROR "hubprobe: this build has no man pages (-DHUBPROBE_MAN_PAGES=OFF); a .deb needs them.")
  endif()
  if(NOT CPACK_HUBPROBE_CHANGELOG_UPSTREAM STREQUAL CPACK_PACKAGE_VERSION)
    message(FATAL_ERROR
      "hubprobe: the latest entry of config/debian/changelog is for ${CPACK_HUBPROBE_CHANGELOG_UPSTREAM}, "
      "the package is ${CPACK_PACKAGE_VERSION}: add an entry for ${CPACK_PACKAGE_VERSION}-1 at the top.")
  endif()
endif()
