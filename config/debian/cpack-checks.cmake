# SPDX-License-Identifier: Apache-2.0
# CPACK_PROJECT_CONFIG_FILE (top-level CMakeLists.txt): cpack reads this before it installs anything.
# It refuses a .deb that would not work as installed (docs/operations.md, "Packaging").
if(CPACK_GENERATOR STREQUAL "DEB")
  # The package installs to /usr (CPACK_PACKAGING_INSTALL_PREFIX); the paths compiled into the programs
  # and written into the man pages are those of the configured prefix.
  if(NOT CPACK_HUBPROBE_PREFIX MATCHES "^/usr/?$" OR NOT CPACK_HUBPROBE_SYSCONFDIR STREQUAL "/etc")
    message(FATAL_ERROR
      "hubprobe: this build is configured for the prefix ${CPACK_HUBPROBE_PREFIX}, not /usr: its "
      "hubprobed and hubprobe default to ${CPACK_HUBPROBE_SYSCONFDIR}/hubprobe/hubprobe.toml, while the "
      "package installs /etc/hubprobe/hubprobe.toml. Build the .deb with scripts/package.sh (a build "
      "in build-deb/ configured with -DCMAKE_INSTALL_PREFIX=/usr), or configure this build with "
      "-DCMAKE_INSTALL_PREFIX=/usr and run cpack again.")
  endif()
  if(NOT CPACK_HUBPROBE_MAN_PAGES)
    message(FATAL_ERROR "hubprobe: this build has no man pages (-DHUBPROBE_MAN_PAGES=OFF); a .deb needs them.")
  endif()
  if(NOT CPACK_HUBPROBE_CHANGELOG_UPSTREAM STREQUAL CPACK_PACKAGE_VERSION)
    message(FATAL_ERROR
      "hubprobe: the latest entry of config/debian/changelog is for ${CPACK_HUBPROBE_CHANGELOG_UPSTREAM}, "
      "the package is ${CPACK_PACKAGE_VERSION}: add an entry for ${CPACK_PACKAGE_VERSION}-1 at the top.")
  endif()
endif()
