# gcpinConfig.cmake: find_package(gcpin) for gcpin's installed library.
#
# Gives the imported target gcpin::gcpin (the shared library libgcpin.so, its
# headers: gcpin.h, and libgc's API as <gc.h> and <gc/gc.h>), and
# gcpin::gcpin_static (libgcpin.a). Installed by `make install` as
# <prefix>/lib/cmake/gcpin/; the prefix is found from this file's location.

get_filename_component(_gcpin_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)

find_package(Threads REQUIRED)

if(NOT TARGET gcpin::gcpin)
  add_library(gcpin::gcpin SHARED IMPORTED)
  set_target_properties(gcpin::gcpin PROPERTIES
    IMPORTED_LOCATION "${_gcpin_prefix}/lib/libgcpin.so.0"
    IMPORTED_SONAME "libgcpin.so.0"
    INTERFACE_INCLUDE_DIRECTORIES "${_gcpin_prefix}/include/gcpin;${_gcpin_prefix}/include"
    INTERFACE_LINK_LIBRARIES "Threads::Threads;${CMAKE_DL_LIBS};m")
endif()

if(NOT TARGET gcpin::gcpin_static)
  add_library(gcpin::gcpin_static STATIC IMPORTED)
  set_target_properties(gcpin::gcpin_static PROPERTIES
    IMPORTED_LOCATION "${_gcpin_prefix}/lib/libgcpin.a"
    INTERFACE_INCLUDE_DIRECTORIES "${_gcpin_prefix}/include/gcpin;${_gcpin_prefix}/include"
    INTERFACE_LINK_LIBRARIES "Threads::Threads;${CMAKE_DL_LIBS};m")
endif()

set(gcpin_FOUND TRUE)
unset(_gcpin_prefix)
