# Admin HTTP API (orchestrator/admin) and sagactl (tools/sagactl), against a
# temporary database with the real schema (orchestrator/store/schema.h).
set(_admin_dir ${CMAKE_CURRENT_LIST_DIR})
saga_unit_test(test_admin
  SOURCES ${_admin_dir}/test_admin.c ${_admin_dir}/test_admin_fixture.c
  LIBS saga_admin PkgConfig::CURL)

if(TARGET sagactl)
  saga_unit_test(test_sagactl
    SOURCES ${_admin_dir}/test_sagactl.c ${_admin_dir}/test_admin_fixture.c
    LIBS saga_admin PkgConfig::CURL)
  add_dependencies(test_sagactl sagactl)
  target_compile_definitions(test_sagactl PRIVATE SAGACTL_PATH="$<TARGET_FILE:sagactl>")
endif()

saga_unit_test(test_admin_commands
  SOURCES ${_admin_dir}/test_admin_commands.c ${_admin_dir}/test_admin_fixture.c
  LIBS saga_admin PkgConfig::CURL)
