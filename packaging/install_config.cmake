# Runs at install time (packaging/CMakeLists.txt): fills the systemd units'
# and the example settings' paths for the prefix being installed to, and
# installs them. /usr (the Debian package) puts the settings in /etc/sagad,
# another prefix in PREFIX/etc/sagad. Settings files that already exist are
# kept (an operator's edits survive a reinstall; dpkg treats them as conffiles).
set(prefix "${CMAKE_INSTALL_PREFIX}")
if(prefix STREQUAL "/usr")
  set(SAGA_CONFDIR "/etc/sagad")
else()
  set(SAGA_CONFDIR "${prefix}/etc/sagad")
endif()
set(SAGA_BINDIR "${prefix}/${SAGA_BINDIR_REL}")
set(SAGA_DATADIR "${prefix}/${SAGA_DATADIR_REL}/sagad")
set(unit_dir "${SAGA_SYSTEMD_UNIT_DIR}")
if(unit_dir STREQUAL "")
  set(unit_dir "${prefix}/lib/systemd/system")
endif()

# A directory of this run's own: two installs at once (cpack and cmake --install) do not mix.
string(RANDOM LENGTH 12 run)
set(SAGA_STAGING_DIR "${SAGA_STAGING_DIR}/${run}")
set(units "")
foreach(template ${SAGA_UNIT_TEMPLATES})
  get_filename_component(name "${template}" NAME)
  string(REGEX REPLACE "\\.in$" "" name "${name}")
  configure_file("${template}" "${SAGA_STAGING_DIR}/units/${name}" @ONLY)
  list(APPEND units "${SAGA_STAGING_DIR}/units/${name}")
endforeach()
file(INSTALL ${units} DESTINATION "${unit_dir}"
     FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)

foreach(template ${SAGA_ENV_TEMPLATES})
  get_filename_component(name "${template}" NAME)
  string(REGEX REPLACE "\\.in$" "" name "${name}")
  if(EXISTS "$ENV{DESTDIR}${SAGA_CONFDIR}/${name}")
    message(STATUS "Keeping: $ENV{DESTDIR}${SAGA_CONFDIR}/${name} (exists; the new example is not installed)")
    continue()
  endif()
  configure_file("${template}" "${SAGA_STAGING_DIR}/etc/${name}" @ONLY)
  # 0640: an environment file may hold the admin token or Kafka credentials.
  file(INSTALL "${SAGA_STAGING_DIR}/etc/${name}" DESTINATION "${SAGA_CONFDIR}"
       FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ)
endforeach()
file(REMOVE_RECURSE "${SAGA_STAGING_DIR}")
