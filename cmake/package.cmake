# Installation and the Debian package (issue 20), included at the end of CMakeLists.txt.
#
#   cmake --install BUILD [--prefix /usr/local]   binaries, man pages, unit, completion
#   scripts/package.sh                            tenderd_VERSION-1_ARCH.deb (CPack, DEB)
#
# Installs, under the prefix (/usr in the package):
#   bin/tenderd, bin/tenderctl                (install(TARGETS) in CMakeLists.txt)
#   share/man/man8/tenderd.8.gz, share/man/man1/tenderctl.1.gz
#                                             help2man, from the binaries' --help
#   lib/systemd/system/tenderd.service        scripts/tenderd.service, ExecStart in PREFIX/bin
#   share/bash-completion/completions/{tenderd,tenderctl}
#   share/doc/tenderd/{copyright,changelog.Debian.gz}
# The maintainer scripts (packaging/debian/) create the user tenderd and
# /var/lib/tenderd (0750); the unit is not enabled at install.

set(TD_PKG_SRC ${CMAKE_CURRENT_LIST_DIR}/../packaging)
get_filename_component(TD_PKG_SRC ${TD_PKG_SRC} ABSOLUTE)
set(TD_PKG_OUT ${CMAKE_BINARY_DIR}/packaging)

set(TENDER_DEB_RELEASE 1 CACHE STRING "Debian revision of the tenderd package")
set(TENDER_DEB_MAINTAINER "tenderd maintainers <tenderd@example.org>" CACHE STRING
    "Maintainer field of the tenderd package (and its changelog)")
set(TD_DEB_VERSION ${PROJECT_VERSION}-${TENDER_DEB_RELEASE})

# changelog.Debian: one entry for this version, dated by SOURCE_DATE_EPOCH when it is set.
set(TENDER_DEB_VERSION ${TD_DEB_VERSION})
string(TIMESTAMP TENDER_DEB_DATE "%a, %d %b %Y %H:%M:%S +0000" UTC)
configure_file(${TD_PKG_SRC}/debian/changelog.in ${TD_PKG_OUT}/changelog.Debian @ONLY)

install(CODE "
  set(TD_SRC \"${CMAKE_SOURCE_DIR}\")
  set(TD_OUT \"${TD_PKG_OUT}\")
  set(TD_TENDERD \"$<TARGET_FILE:tenderd>\")
  set(TD_TENDERCTL \"$<TARGET_FILE:tenderctl>\")
  set(TD_VERSION \"${PROJECT_VERSION}\")
  set(TD_CHANGELOG \"${TD_PKG_OUT}/changelog.Debian\")
  include(\"${TD_PKG_SRC}/install.cmake\")
")
install(FILES ${TD_PKG_OUT}/man/tenderd.8.gz DESTINATION share/man/man8 OPTIONAL)
install(FILES ${TD_PKG_OUT}/man/tenderctl.1.gz DESTINATION share/man/man1 OPTIONAL)
install(FILES ${TD_PKG_OUT}/tenderd.service DESTINATION lib/systemd/system)
install(FILES ${TD_PKG_SRC}/bash-completion/tenderd ${TD_PKG_SRC}/bash-completion/tenderctl
        DESTINATION share/bash-completion/completions)
install(FILES ${TD_PKG_SRC}/debian/copyright ${TD_PKG_OUT}/changelog.Debian.gz
        DESTINATION share/doc/tenderd)

# CPack: one binary package, tenderd_<version>-<release>_<arch>.deb.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME tenderd)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "tenderd")
set(CPACK_PACKAGE_CONTACT "${TENDER_DEB_MAINTAINER}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "peer-to-peer ledger of public procurement records")
# The generated files name /usr (ExecStart): install with DESTDIR under the real prefix.
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE ${TENDER_DEB_RELEASE})
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${TENDER_DEB_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# The extended description (the synopsis is CPACK_PACKAGE_DESCRIPTION_SUMMARY); CPack
# indents each line by one space; "." is an empty line.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "tenderd keeps one ledger of signed OCDS 1.1 releases (tenders, amendments,
cancellations and awards) shared by the nodes of several government agencies
and agreed on block by block by their validators. Each agency runs a node and
publishes through its Unix socket with tenderctl; anyone holding a copy of the
ledger can check who published what and when.
.
The package holds tenderd and tenderctl, their man pages and bash completion,
and a systemd unit (not enabled at install) that runs a node as the system
user tenderd with its home in /var/lib/tenderd.")
# Runtime libraries from dpkg-shlibdeps; adduser for the maintainer scripts.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${TD_PKG_SRC}/debian/postinst ${TD_PKG_SRC}/debian/prerm ${TD_PKG_SRC}/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_PACKAGE_DIRECTORY ${CMAKE_BINARY_DIR}/package)
include(CPack)
