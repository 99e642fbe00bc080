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

# POST /v1/sagas/retry and /abort (admin_bulk.c): the body's checks, the
# selection over list pages, the batches handed on.
saga_unit_test(test_admin_bulk
  SOURCES ${_admin_dir}/test_admin_bulk.c ${_admin_dir}/test_admin_fixture.c
  LIBS saga_admin PkgConfig::CURL)

# GET /v1/sagas (filters, cursors), /v1/definitions, /v1/stats: on one
# database file, and the same tests on 3 shard files (sagas spread by the hash).
saga_unit_test(test_admin_list
  SOURCES ${_admin_dir}/test_admin_list.c ${_admin_dir}/test_admin_fixture.c
  LIBS saga_admin PkgConfig::CURL)
saga_unit_test(test_admin_list_shards
  SOURCES ${_admin_dir}/test_admin_list.c ${_admin_dir}/test_admin_fixture.c
  LIBS saga_admin PkgConfig::CURL)
target_compile_definitions(test_admin_list_shards PRIVATE FX_SHARDS=3)

# sagactl's output, command by command, against tests/fixtures/sagactl/
# (SAGA_UPDATE_GOLDEN=1 bin/test_sagactl_golden rewrites the files).
if(TARGET sagactl)
  saga_unit_test(test_sagactl_golden
    SOURCES ${_admin_dir}/test_sagactl_golden.c ${_admin_dir}/test_admin_fixture.c
    LIBS saga_admin PkgConfig::CURL)
  add_dependencies(test_sagactl_golden sagactl)
  target_compile_definitions(test_sagactl_golden PRIVATE SAGACTL_PATH="$<TARGET_FILE:sagactl>")
endif()

saga_unit_test(test_admin_metrics
  SOURCES ${_admin_dir}/test_admin_metrics.c ${_admin_dir}/test_admin_fixture.c
          ${CMAKE_SOURCE_DIR}/orchestrator/runtime.c
  LIBS saga_admin PkgConfig::CURL)
target_include_directories(test_admin_metrics PRIVATE ${CMAKE_SOURCE_DIR}/orchestrator)

# GET /ui: the web view (docs/ui/index.html, compiled in) as HTML.
saga_unit_test(test_admin_ui
  SOURCES ${_admin_dir}/test_admin_ui.c ${_admin_dir}/test_admin_fixture.c
  LIBS saga_admin PkgConfig::CURL)

# The admin server's guards over raw sockets (Host, Origin, forms, 414/431)
# and sagad's admin token file.
saga_unit_test(test_admin_guard
  SOURCES ${_admin_dir}/test_admin_guard.c ${_admin_dir}/test_admin_fixture.c
  LIBS saga_admin PkgConfig::CURL)

# The admin API over several shard files (sagas spread by the hash) against
# the same rows in one database: list pages, get/?at=, stats, definitions,
# metrics, commands, and a missing or unreadable shard (503 naming it).
saga_unit_test(test_admin_shards
  SOURCES ${_admin_dir}/test_admin_shards.c ${_admin_dir}/test_admin_fixture.c
  LIBS saga_admin PkgConfig::CURL)

# test_admin.c again over 7 shard files (the sample sagas land in shards 2, 0 and 4).
saga_unit_test(test_admin_shards_http
  SOURCES ${_admin_dir}/test_admin.c ${_admin_dir}/test_admin_fixture.c
  LIBS saga_admin PkgConfig::CURL)
target_compile_definitions(test_admin_shards_http PRIVATE FX_SHARDS=7)
