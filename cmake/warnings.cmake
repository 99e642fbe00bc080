# Every target of the project builds with these; a warning is an error.
add_compile_options(-Wall -Wextra -Werror -Wshadow -Wstrict-prototypes
                    -Wmissing-prototypes -Wno-unused-parameter
                    # Messages are cut to fixed buffers on purpose.
                    -Wno-format-truncation)
add_compile_definitions(_POSIX_C_SOURCE=200809L _DEFAULT_SOURCE)
