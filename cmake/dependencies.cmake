# External libraries through pkg-config. A missing one stops the configure
# step with the Debian package that provides it (scripts/deps installs all).
find_package(PkgConfig)
if(NOT PKG_CONFIG_FOUND)
  message(FATAL_ERROR "pkg-config not found: install the Debian package 'pkg-config' (or run scripts/deps)")
endif()

function(saga_require target module debian_package)
  pkg_check_modules(${target} QUIET IMPORTED_TARGET ${module})
  if(NOT ${target}_FOUND)
    message(FATAL_ERROR "missing dependency '${module}': install the Debian package '${debian_package}' (or run scripts/deps)")
  endif()
endfunction()

saga_require(RDKAFKA   rdkafka        librdkafka-dev)
saga_require(JANSSON   jansson        libjansson-dev)
saga_require(SQLITE3   sqlite3        libsqlite3-dev)
saga_require(CURL      libcurl        libcurl4-openssl-dev)
saga_require(MHD       libmicrohttpd  libmicrohttpd-dev)
saga_require(CMOCKA    cmocka         libcmocka-dev)
find_package(Threads REQUIRED)
