# Turns a file into a C source holding its bytes (cmake -P, no xxd needed):
#   cmake -DIN=docs/ui/index.html -DOUT=admin_ui_page.c -DNAME=saga_admin_ui_page -P embed.cmake
# defines `const unsigned char NAME[]` (the bytes plus a NUL, not counted)
# and `const size_t NAME_len`. Used by orchestrator/CMakeLists.txt for sagad's
# web view (GET /ui, orchestrator/admin/admin_ui.c).
if(NOT IN OR NOT OUT OR NOT NAME)
  message(FATAL_ERROR "embed.cmake: set IN, OUT and NAME")
endif()
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" hex_len)
math(EXPR size "${hex_len} / 2")
# 16 bytes a line (CMake's regex has no {n}, hence the repeat).
string(REPEAT "[0-9a-f][0-9a-f]" 16 line_re)
string(REGEX REPLACE "(${line_re})" "\\1\n" hex "${hex}")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE "${OUT}"
  "/* Generated from ${IN} by docs/ui/embed.cmake: do not edit. */\n"
  "#include <stddef.h>\n"
  "extern const unsigned char ${NAME}[];\n"
  "extern const size_t ${NAME}_len;\n"
  "const unsigned char ${NAME}[] = {\n${bytes}0x00};\n"
  "const size_t ${NAME}_len = ${size};\n")
