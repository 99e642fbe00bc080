# The Debian package (`cpack -G DEB` in the build directory): everything
# `cmake --install` installs, under /usr, the settings in /etc/sagad as
# conffiles, the runtime libraries as dependencies (dpkg-shlibdeps finds
# them: librdkafka1, libjansson4, libsqlite3-0, libcurl4, libmicrohttpd12,
# libc6), and maintainer scripts that only reload systemd and stop the units
# on removal (packaging/debian). tests/package/test_deb.sh checks it.
set(CPACK_GENERATOR "DEB")
set(CPACK_PACKAGE_NAME "sagad")
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_CONTACT "sagad maintainers <sagad@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "saga orchestration daemon over Kafka, state in SQLite")
set(CPACK_PACKAGE_DESCRIPTION "sagad runs sagas (sequences of steps, each with a compensation) defined in JSON:
it sends each step's command to its participant over Kafka, keeps every saga's state in SQLite,
and compensates the completed steps when one fails. With sagactl (command line over the admin
API), the example participants (order, inventory, payment, notification workers), the dev
Kafka broker sagabroker, systemd units and man pages.")
set(CPACK_PACKAGING_INSTALL_PREFIX "/usr")
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION "net")
set(CPACK_DEBIAN_PACKAGE_PRIORITY "optional")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "man-db")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "kcat, sqlite3")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${CMAKE_CURRENT_SOURCE_DIR}/debian/conffiles
  ${CMAKE_CURRENT_SOURCE_DIR}/debian/postinst
  ${CMAKE_CURRENT_SOURCE_DIR}/debian/prerm
  ${CMAKE_CURRENT_SOURCE_DIR}/debian/postrm)
include(CPack)
