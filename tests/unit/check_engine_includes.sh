#!/usr/bin/env bash
# The pure engine's include boundary (ctest engine_includes, label unit):
# every #include in orchestrator/engine/*.c and *.h, and in the core headers
# (common/, library saga_core), must be a C11 or POSIX standard header,
# <jansson.h>, a core header ("saga_x.h") or an engine header ("x.h" in
# orchestrator/engine/). Anything else (librdkafka, SQLite, curl, saga_kafka.h,
# bus/store/admin headers) fails, naming the file, line and include.
#
# usage: check_engine_includes.sh SOURCE_DIR CORE_HEADER...
#   CORE_HEADER: the core library's headers by name (tests/unit/engine.cmake
#   derives them from saga_core's explicit source list in common/CMakeLists.txt).
set -u

if [ $# -lt 2 ]; then
  echo "usage: $0 SOURCE_DIR CORE_HEADER..." >&2
  exit 2
fi
src=$1
shift
engine_dir=orchestrator/engine
core_dir=common

# C11 (7.1.2) and POSIX.1-2017 standard headers.
std_headers="assert.h complex.h ctype.h errno.h fenv.h float.h inttypes.h iso646.h limits.h
locale.h math.h setjmp.h signal.h stdalign.h stdarg.h stdatomic.h stdbool.h stddef.h stdint.h
stdio.h stdlib.h stdnoreturn.h string.h tgmath.h threads.h time.h uchar.h wchar.h wctype.h
aio.h arpa/inet.h cpio.h dirent.h dlfcn.h fcntl.h fmtmsg.h fnmatch.h ftw.h glob.h grp.h iconv.h
langinfo.h libgen.h monetary.h mqueue.h ndbm.h net/if.h netdb.h netinet/in.h netinet/tcp.h
nl_types.h poll.h pthread.h pwd.h regex.h sched.h search.h semaphore.h spawn.h strings.h
stropts.h sys/ipc.h sys/mman.h sys/msg.h sys/resource.h sys/select.h sys/sem.h sys/shm.h
sys/socket.h sys/stat.h sys/statvfs.h sys/time.h sys/times.h sys/types.h sys/uio.h sys/un.h
sys/utsname.h sys/wait.h syslog.h tar.h termios.h trace.h ulimit.h unistd.h utime.h utmpx.h
wordexp.h"
std_headers=" $(echo $std_headers) "
core_headers=" $* "


files=()
for f in "$src/$engine_dir"/*.c "$src/$engine_dir"/*.h; do
  [ -e "$f" ] && files+=("$f")
done
if [ ${#files[@]} -eq 0 ]; then
  echo "engine_includes: no .c or .h file in $src/$engine_dir" >&2
  exit 2
fi
for h in "$@"; do
  if [ ! -f "$src/$core_dir/$h" ]; then
    echo "engine_includes: core header $core_dir/$h (from saga_core's sources) does not exist" >&2
    exit 2
  fi
  files+=("$src/$core_dir/$h")
done

bad=0
checked=0
for f in "${files[@]}"; do
  rel=${f#"$src"/}
  while IFS= read -r hit; do
    line=${hit%%:*}
    text=${hit#*:}
    checked=$((checked + 1))
    # the name between <> or "" after #include
    if [[ $text =~ ^[[:space:]]*#[[:space:]]*include[[:space:]]*\<([^\>]+)\> ]]; then
      name=${BASH_REMATCH[1]}
      if [ "$name" = jansson.h ] || [[ $std_headers == *" $name "* ]]; then
        continue
      fi
      why="<$name> is not a C11/POSIX standard header nor <jansson.h>"
    elif [[ $text =~ ^[[:space:]]*#[[:space:]]*include[[:space:]]*\"([^\"]+)\" ]]; then
      name=${BASH_REMATCH[1]}
      if [[ $name != */* ]] && { [[ $core_headers == *" $name "* ]] ||
           { [[ $rel == $engine_dir/* ]] && [ -f "$src/$engine_dir/$name" ]; }; }; then
        continue
      fi
      if [[ $rel == $engine_dir/* ]]; then
        why="\"$name\" is neither a core header ($core_dir/, saga_core) nor in $engine_dir/"
      else
        why="\"$name\" is not a core header ($core_dir/, saga_core)"
      fi
    else
      why="not of the form #include <name> or #include \"name\""
    fi
    echo "$rel:$line: ${text#"${text%%[![:space:]]*}"}: $why" >&2
    bad=$((bad + 1))
  done < <(grep -n '^[[:space:]]*#[[:space:]]*include' "$f")
done

if [ $bad -ne 0 ]; then
  echo "engine_includes: $bad include(s) outside libc/POSIX, jansson and the core library" \
       "(orchestrator/engine/ must stay pure: see docs/DESIGN.md)" >&2
  exit 1
fi
if [ $checked -eq 0 ]; then
  echo "engine_includes: no #include found in ${#files[@]} files: the scan is broken" >&2
  exit 2
fi
echo "engine_includes: ${#files[@]} files, $checked includes, all libc/POSIX, jansson or core"
