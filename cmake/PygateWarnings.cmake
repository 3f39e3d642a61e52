# pygate_warnings(target): pygate's own warning flags on one of its targets
# (never on a project that embeds pygate); errors when PYGATE_WERROR is on,
# which it is by default only when pygate is the top-level project.
function(pygate_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra)
  if(PYGATE_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
