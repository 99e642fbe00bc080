# SAGA_SANITIZE=ON: AddressSanitizer + UndefinedBehaviorSanitizer, and any
# UB report aborts so a test cannot pass over it.
if(SAGA_SANITIZE)
  set(_san -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
  add_compile_options(${_san})
  add_link_options(${_san})
endif()
